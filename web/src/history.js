// The redraft history of this document, for everyone in it: who asked for what and when, with undo
// and redo of each redraft that can still be taken back, and the server's precise reason when one
// cannot. Reloaded when opened and whenever a redraft changes while it is open.
import { DEFAULT_COLOR } from './canvas-view.js'
import { safeColor } from './trust.js'

const KIND_WORDS = { rewrite: 'Rewrite', fill: 'Fill in', continue: 'Continue', restore: 'Restore' }
const STATUS_WORDS = {
  queued: 'waiting', running: 'writing', suggested: 'suggested, waiting for a decision', done: 'applied', undone: 'undone',
  conflict: 'not put in: the passage changed too much', failed: 'failed', cancelled: 'stopped', rejected: 'rejected', expired: 'expired'
}

/** "just now", "5 min ago", "3 h ago", or the date: when a redraft was asked for. */
export function whenAsked (epochS, nowMs = Date.now()) {
  const seconds = Math.max(0, nowMs / 1000 - epochS)
  if (seconds < 60) return 'just now'
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`
  return new Date(epochS * 1000).toLocaleDateString()
}

/** What a person asked for, in a line: the instruction, else the kind. */
export function askedFor (redraft) {
  if (redraft.kind === 'restore') return 'Restored an earlier version (see Versions)'
  const instruction = typeof redraft.instruction === 'string' ? redraft.instruction.trim() : ''
  return instruction ? `“${instruction.length > 140 ? instruction.slice(0, 139) + '…' : instruction}”` : (KIND_WORDS[redraft.kind] || 'Redraft')
}

function element (tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props)
  node.append(...children)
  return node
}

export function setUpHistory ({ panel, api, board, canEdit }) {
  const list = panel.querySelector('#history-list')
  const state = panel.querySelector('#history-state')
  let loading = null

  function item (redraft) {
    const requester = redraft.requester && typeof redraft.requester === 'object' ? redraft.requester : {}
    const name = typeof requester.name === 'string' && requester.name ? requester.name : 'Someone'
    const dot = element('span', { className: 'history-dot' })
    dot.style.background = safeColor(requester.color, DEFAULT_COLOR)
    dot.setAttribute('aria-hidden', 'true')
    const status = STATUS_WORDS[redraft.status] || redraft.status
    const head = element('p', { className: 'history-head' }, dot,
      element('strong', { textContent: name }),
      element('span', { className: 'history-when', textContent: ` · ${whenAsked(Number(redraft.created_at) || 0)}` }))
    const what = element('p', { className: 'history-what', textContent: askedFor(redraft) })
    const meta = element('p', { className: 'history-status', textContent: `${KIND_WORDS[redraft.kind] || 'Redraft'}${redraft.mode === 'suggest' ? ' (suggested)' : ''} · ${status}` })
    const row = element('li', { className: 'history-item' }, head, what, meta)
    row.dataset.id = redraft.id
    row.dataset.status = redraft.status
    if (canEdit() && (redraft.can_undo || redraft.can_redo)) {
      const isUndo = Boolean(redraft.can_undo)
      const action = element('button', { type: 'button', className: 'history-action', textContent: isUndo ? 'Undo' : 'Redo' })
      action.title = isUndo ? `Undo ${name}’s redraft` : `Put ${name}’s redraft back in`
      action.addEventListener('click', async () => {
        action.disabled = true
        await (isUndo ? board.undo(redraft.id) : board.redo(redraft.id))
        await reload()
        list.querySelector(`[data-id="${CSS.escape(redraft.id)}"] .history-action`)?.focus()
      })
      row.append(action)
    }
    if (typeof redraft.undo_blocked === 'string' && redraft.undo_blocked && (redraft.status === 'done' || redraft.status === 'undone')) {
      row.append(element('p', { className: 'history-blocked', textContent: redraft.undo_blocked }))
    }
    return row
  }

  async function reload () {
    if (loading) return loading
    loading = (async () => {
      try {
        const { redrafts } = await api.redrafts()
        const shown = Array.isArray(redrafts) ? redrafts.filter((redraft) => redraft && typeof redraft.id === 'string') : []
        state.textContent = shown.length ? '' : 'No redrafts in this document yet. Select a passage and press the Redraft button to ask for one.'
        state.hidden = shown.length > 0
        list.replaceChildren(...shown.map(item))
      } catch (error) {
        state.hidden = false
        state.textContent = `The history could not be loaded: ${error.advice || error.message}`
      } finally {
        loading = null
      }
    })()
    return loading
  }

  panel.addEventListener('toggle', async (event) => {
    if (event.newState !== 'open') return
    await reload()
    // Into the panel, as a dialog opened from the keyboard should: the newest redraft's Undo or Redo, else the
    // panel itself (its list is read by Tab from there). A click elsewhere meanwhile closed it: nothing to do.
    if (panel.matches(':popover-open') && !panel.contains(document.activeElement)) {
      (list.querySelector('.history-action') || panel).focus()
    }
  })
  return {
    changed () { if (panel.matches(':popover-open')) reload() },
    reload
  }
}
