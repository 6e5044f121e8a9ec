// The versions panel: every version of the document, newest first, with who made it, when and how
// (typing, a redraft, an undo, a restore); one chosen is shown against the current text (or against
// the version before it) with the changes marked, and can be restored after a confirmation, with Undo
// in the toast. Two columns on a desktop; at phone width the list, then the chosen version, full width.
import { DEFAULT_COLOR } from './canvas-view.js'
import { safeColor } from './trust.js'
import { diffRuns, diffSize, foldUnchanged, versionBy, versionTime, versionWhat } from './version-text.js'

const PAGE = 50
const REFRESH_MS = 1500 // after the text changes: the server records a batch within milliseconds; this spares it a reload per keystroke
const PHONE = '(max-width: 760px)'
const MARKS = {
  now: { delete: 'removed since: ', insert: 'added since: ', legend: 'Compared with the current text: underlined was added since this version, struck through was removed since.' },
  changes: { delete: 'removed: ', insert: 'added: ', legend: 'What this version changed: underlined was added, struck through was removed.' }
}

function element (tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props)
  node.append(...children)
  return node
}

/** The runs of a diff as text with <del> and <ins>, each also labelled in words for screen readers. */
function drawDiff (box, runs, marks) {
  const nodes = foldUnchanged(runs).map((run) => {
    if (run.op === 'keep') return document.createTextNode(run.text)
    if (run.op === 'fold') {
      const more = element('button', { type: 'button', className: 'versions-fold', textContent: `Show ${run.text.length.toLocaleString()} unchanged characters` })
      more.addEventListener('click', () => { more.replaceWith(run.text); box.focus() })
      return more
    }
    const tag = run.op === 'delete' ? 'del' : 'ins'
    const said = marks[run.op]
    return element(tag, { title: said.slice(0, -2).replace(/^./, (c) => c.toUpperCase()) },
      element('span', { className: 'visually-hidden', textContent: `[${said}` }), run.text,
      element('span', { className: 'visually-hidden', textContent: ']' }))
  })
  box.replaceChildren(...nodes)
}

/** What a restore's answer offers to take it back: the redraft undo of its id, when the server gives one. */
export function restoreUndoId (restore) {
  if (!restore || typeof restore !== 'object') return null
  const id = [restore.redraft_id, restore.redraft && restore.redraft.id, restore.id].find((value) => typeof value === 'string' && value)
  return id || null
}

export function setUpVersions ({ panel, api, ytext, toasts, canEdit, by, focusText }) {
  const $ = (selector) => panel.querySelector(selector)
  const list = $('#versions-list')
  const state = $('#versions-state')
  const older = $('#versions-older')
  const detail = $('#versions-detail')
  const diffBox = $('#versions-diff')
  const restoreButton = $('#versions-restore')
  const confirm = $('#versions-confirm')
  let versions = [] // newest first
  let next = null
  let chosen = null // the chosen version's first_seq: stays put while its author keeps typing (its id grows)
  let compare = 'now'
  let refreshTimer = 0
  let diffAsked = 0 // answers to older diff requests are dropped
  const isOpen = () => panel.matches(':popover-open')
  const timeOf = (id) => { const found = versions.find((version) => version.id === id); return found ? versionTime(found.ended_at) : null }
  const chosenVersion = () => versions.find((version) => version.first_seq === chosen) || null

  function row (version) {
    const dot = element('span', { className: 'history-dot' })
    dot.style.background = safeColor(version.author && version.author.color, DEFAULT_COLOR)
    dot.setAttribute('aria-hidden', 'true')
    const button = element('button', { type: 'button', className: 'versions-row' },
      element('span', { className: 'versions-who' }, dot, element('strong', { textContent: versionBy(version) })),
      element('span', { className: 'versions-line' },
        element('span', { className: 'versions-when', textContent: versionTime(version.ended_at) }), ' · ',
        element('span', { className: 'versions-what', textContent: versionWhat(version, timeOf) })))
    if (version.first_seq === chosen) button.setAttribute('aria-current', 'true')
    button.addEventListener('click', () => choose(version))
    const item = element('li', { className: 'versions-item' }, button)
    item.dataset.id = version.id
    item.dataset.kind = version.kind
    return item
  }

  function drawList () {
    const focusedSeq = list.contains(document.activeElement) ? Number(document.activeElement.closest('li').dataset.seq) : null
    list.replaceChildren(...versions.map((version) => { const item = row(version); item.dataset.seq = version.first_seq; return item }))
    state.hidden = versions.length > 0
    if (!versions.length) state.textContent = 'No versions yet: the history starts with the first change.'
    older.hidden = next === null
    if (focusedSeq !== null) list.querySelector(`li[data-seq="${focusedSeq}"] button`)?.focus()
  }

  /** The newest page, merged over what is loaded: versions older than it stay, with their paging. */
  async function loadNewest () {
    try {
      const page = await api.versions({ limit: PAGE })
      const fresh = Array.isArray(page.versions) ? page.versions : []
      const oldestFresh = fresh.length ? fresh[fresh.length - 1].first_seq : Infinity
      const kept = versions.filter((version) => version.id < oldestFresh)
      versions = [...fresh, ...kept]
      if (!kept.length) next = page.next ?? null
      drawList()
    } catch (error) {
      state.hidden = false
      state.textContent = `The versions could not be loaded: ${error.advice || error.message}`
    }
  }

  older.addEventListener('click', async () => {
    older.disabled = true
    const problem = $('#versions-older-problem')
    problem.hidden = true
    try {
      const page = await api.versions({ limit: PAGE, before: next })
      const count = versions.length
      versions = [...versions, ...(Array.isArray(page.versions) ? page.versions : [])]
      next = page.next ?? null
      drawList()
      list.children[count]?.querySelector('button').focus() // on to the first of the older ones
    } catch (error) { // said in the panel: a toast would be under it
      problem.hidden = false
      problem.textContent = `Older versions could not be loaded: ${error.advice || error.message}`
    } finally {
      older.disabled = false
    }
  })

  function choose (version, { moveFocus = window.matchMedia(PHONE).matches } = {}) {
    chosen = version.first_seq
    for (const button of list.querySelectorAll('.versions-row')) button.removeAttribute('aria-current')
    list.querySelector(`li[data-seq="${chosen}"] .versions-row`)?.setAttribute('aria-current', 'true')
    panel.dataset.view = 'detail'
    drawDetail(version)
    if (moveFocus) $('#versions-detail-title').focus() // at phone width the list is gone: into what replaced it
  }

  function drawDetail (version) {
    detail.hidden = false
    $('#versions-pick').hidden = true
    $('#versions-detail-title').textContent = `${versionBy(version)} · ${versionTime(version.ended_at)}`
    $('#versions-detail-what').textContent = versionWhat(version, timeOf, true)
    const isRedraft = ['redraft', 'undo', 'redo'].includes(version.kind)
    const redraft = isRedraft ? version.redraft : null
    const about = $('#versions-redraft')
    about.hidden = !redraft
    if (redraft) {
      const parts = []
      if (redraft.requester && redraft.requester.name) parts.push(`Asked by ${versionBy({ author: redraft.requester })}`)
      if (typeof redraft.model === 'string' && redraft.model) parts.push(`model ${redraft.model}`)
      about.textContent = parts.join(' · ')
      about.hidden = !parts.length
    }
    $('#versions-changes-label').textContent = isRedraft ? 'Before → after this redraft' : 'What this version changed'
    restoreButton.hidden = !canEdit()
    showDiff(version)
  }

  /** The version's older neighbour, or null when it is the first version there is. */
  function before (version) {
    const index = versions.indexOf(version)
    if (index >= 0 && index + 1 < versions.length) return versions[index + 1]
    return next === null ? null : { id: version.first_seq - 1 }
  }

  async function showDiff (version) {
    const asked = ++diffAsked
    const marks = MARKS[compare]
    $('#versions-legend').textContent = marks.legend
    diffBox.setAttribute('aria-busy', 'true')
    $('#versions-size').textContent = 'Comparing…'
    const problem = $('#versions-problem')
    try {
      let runs
      if (compare === 'now') {
        runs = diffRuns((await api.versionDiff(version.id, 'current')).ops)
      } else {
        const previous = before(version)
        runs = previous
          ? diffRuns((await api.versionDiff(previous.id, version.id)).ops)
          : diffRuns([['+', (await api.version(version.id)).text]]) // the first version: all of it came in
      }
      if (asked !== diffAsked) return
      const size = diffSize(runs)
      problem.hidden = true
      $('#versions-size').textContent = size.isSame
        ? (compare === 'now' ? 'Same as the current text.' : 'This version changed nothing in the text.')
        : `${size.inserted.toLocaleString()} characters added, ${size.deleted.toLocaleString()} removed.`
      drawDiff(diffBox, runs, marks)
      restoreButton.disabled = compare === 'now' && size.isSame
      restoreButton.title = restoreButton.disabled ? 'This version is the current text.' : ''
    } catch (error) {
      if (asked !== diffAsked) return
      problem.hidden = false
      problem.textContent = error.status === 410
        ? 'This version was folded into a later one when older history was condensed; it can no longer be shown or restored.'
        : `This version could not be shown: ${error.advice || error.message}`
      diffBox.replaceChildren()
      $('#versions-size').textContent = ''
      restoreButton.disabled = true
    } finally {
      if (asked === diffAsked) diffBox.removeAttribute('aria-busy')
    }
  }

  panel.addEventListener('change', (event) => {
    if (event.target.name !== 'versions-compare') return
    compare = event.target.value
    const version = chosenVersion()
    if (version) showDiff(version)
  })

  $('#versions-back').addEventListener('click', () => {
    panel.dataset.view = 'list'
    ;(list.querySelector('[aria-current="true"]') || list.querySelector('button') || panel).focus()
  })

  function confirmRestore (version) {
    $('#versions-confirm-text').textContent = `The text goes back to the version of ${versionTime(version.ended_at)} by ${versionBy(version)}. ` +
      'Everyone in the document sees it at once, and what others type meanwhile is kept. You can undo it.'
    confirm.returnValue = ''
    confirm.showModal()
    return new Promise((resolve) => confirm.addEventListener('close', () => resolve(confirm.returnValue === 'restore'), { once: true }))
  }

  // Restored: back to the text, where the change shows, as Google Docs does; the toast offers Undo.
  restoreButton.addEventListener('click', async () => {
    const version = chosenVersion()
    if (!version || !(await confirmRestore(version))) return restoreButton.focus()
    restoreButton.disabled = true
    const when = versionTime(version.ended_at)
    try {
      const { restore } = await api.restoreVersion(version.id, by())
      const undoId = restoreUndoId(restore)
      panel.hidePopover()
      focusText()
      toasts.show(`Restored the version of ${when}.`, {
        kind: 'success',
        key: 'restore',
        actions: undoId ? [{ label: 'Undo', title: 'Put the text back as it was before the restore', run: () => undoRestore(undoId) }] : []
      })
    } catch (error) { // said in the panel: a toast would be under it
      const problem = $('#versions-problem')
      problem.hidden = false
      problem.textContent = `The version could not be restored: ${error.advice || error.message}`
      restoreButton.disabled = false
      restoreButton.focus()
    }
  })

  async function undoRestore (id) {
    try {
      await api.undo(id, by())
      toasts.show('The restore was undone.', { key: 'restore' })
      focusText()
    } catch (error) {
      toasts.show(`The restore could not be undone: ${error.advice || error.message}`, { kind: 'error', key: 'restore' })
    }
    if (isOpen()) refresh()
  }

  async function refresh () {
    await loadNewest()
    const version = chosenVersion()
    if (version && compare === 'now') showDiff(version)
  }

  // Someone changed the text: the newest version grew or a new one began, and "against now" moved.
  ytext.observe(() => {
    if (!isOpen()) return
    clearTimeout(refreshTimer)
    refreshTimer = setTimeout(refresh, REFRESH_MS)
  })

  list.addEventListener('keydown', (event) => {
    const rows = [...list.querySelectorAll('.versions-row')]
    const at = rows.indexOf(document.activeElement)
    if (at < 0) return
    const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: rows.length - 1 }[event.key]
    if (to === undefined) return
    event.preventDefault()
    rows[Math.max(0, Math.min(rows.length - 1, to))].focus()
  })

  panel.addEventListener('toggle', async (event) => {
    if (event.newState !== 'open') { clearTimeout(refreshTimer); return }
    panel.dataset.view = chosenVersion() ? panel.dataset.view || 'list' : 'list'
    await refresh()
    if (isOpen() && !panel.contains(document.activeElement)) {
      const isDetailAlone = panel.dataset.view === 'detail' && window.matchMedia(PHONE).matches // the list is hidden
      ;(isDetailAlone ? $('#versions-detail-title') : list.querySelector('[aria-current="true"]') || list.querySelector('.versions-row') || panel).focus()
    }
  })
  return { refresh }
}
