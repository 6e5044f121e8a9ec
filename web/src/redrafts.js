// The redraft board: asks the server for redrafts, follows the ones this page asked for, and
// draws everyone's from the AI peer's awareness state (so every collaborator sees the same
// live canvas, whoever asked). Only the server's AI peer, known by the client id the session
// announces, is listened to. Drawing runs once per animation frame however fast steps come.
import * as Y from 'yjs'
import { CanvasView } from './canvas-view.js'
import { buildMarks, setRedraftMarks } from './redraft-marks.js'
import { keyLabel } from './shortcuts.js'
import { isAiPeer } from './trust.js'

// Statuses only move forward, except that undo and redo move a finished redraft between done and undone.
const RANK = { queued: 0, running: 1, suggested: 2, done: 3, conflict: 3, failed: 3, cancelled: 3, rejected: 3, expired: 3, undone: 4 }
const ACTIVE = new Set(['queued', 'running'])
const POLL_MS = [300, 600, 1000, 1500] // quick at first (most redrafts take a second or two), then calmer
const MAX_POLL_FAILURES = 5

export function toBase64 (bytes) {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary)
}

export function fromBase64 (text) {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  return Uint8Array.from(binary, (char) => char.charCodeAt(0))
}

/** Whether a redraft's status may move from `from` to `to` in this page's record of it. */
export function movesOn (from, to) {
  if (!(to in RANK)) return false
  if (from === null || from === undefined) return true
  if ((from === 'done' && to === 'undone') || (from === 'undone' && to === 'done')) return true
  return RANK[to] > RANK[from]
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export class RedraftBoard {
  constructor ({ view, ytext, awareness, api, toasts, requester }) {
    Object.assign(this, { view, ytext, awareness, api, toasts, requester })
    this.canEdit = true
    this.session = null // until it comes, no state is the AI peer's
    this.mine = new Map() // id -> { body, status }: what this page asked for
    this.entries = new Map() // id -> the AI peer's latest word on it
    this.canvases = new Map() // id -> the CanvasView on screen
    this.lastApplied = null
    this.justActed = null // {id, action: 'applied' | 'undone', edits}: what Ctrl+Z / Ctrl+Shift+Z take back
    this.localEdits = 0 // this page's own edits so far: typing after a redraft landed makes Ctrl+Z about the typing again
    this.signature = ''
    this.frame = 0
    this.onActivity = () => {}
    this.onHistory = () => {} // a redraft of this document changed: the history panel reloads
    this.onLanded = () => {} // one of ours landed or was taken back: typing after it is a new undo step
    awareness.on('change', ({ added, updated, removed }) => {
      const changed = [...added, ...updated, ...removed]
      if (changed.some((id) => id !== awareness.clientID)) this.schedule()
    })
  }

  /** The text changed here: a pending suggestion's diff is against the passage as it is now, so redraw it. */
  textChanged () {
    for (const redraft of this.entries.values()) {
      if (['suggested', 'expired', 'conflict'].includes(redraft.status)) return this.schedule()
    }
  }

  setSession (session) {
    this.session = session
    this.schedule()
  }

  relativePosition (index) {
    return toBase64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(this.ytext, index)))
  }

  absolutePosition (encoded) {
    try {
      const position = Y.createAbsolutePositionFromRelativePosition(Y.decodeRelativePosition(fromBase64(encoded)), this.ytext.doc)
      return position && position.type === this.ytext ? Math.min(position.index, this.view.state.doc.length) : null
    } catch {
      return null // not decodable, or its item has not reached this replica yet
    }
  }

  schedule () {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.refresh() })
  }

  /** The AI peer's redraft entries: only from the client id the server reserves for it. */
  aiEntries () {
    const entries = new Map()
    for (const [clientId, state] of this.awareness.getStates()) {
      if (!isAiPeer(clientId, state, this.session) || !Array.isArray(state.redrafts)) continue
      for (const redraft of state.redrafts) {
        if (redraft && typeof redraft === 'object' && typeof redraft.id === 'string' && redraft.id) entries.set(redraft.id, redraft)
      }
    }
    return entries
  }

  refresh () {
    const before = this.entries
    this.entries = this.aiEntries()
    const placed = []
    for (const redraft of this.entries.values()) {
      const old = before.get(redraft.id)
      if (!old || old.status !== redraft.status) this.onHistory()
      if (this.mine.has(redraft.id)) this.note(redraft.id, redraft.status, redraft.error, redraft)
      const anchors = redraft.anchors || {}
      const start = this.absolutePosition(anchors.start)
      const end = this.absolutePosition(anchors.end)
      if (start !== null && end !== null) placed.push({ redraft, from: Math.min(start, end), to: Math.max(start, end) })
    }
    placed.sort((a, b) => a.from - b.from || a.to - b.to)
    const doc = this.view.state.doc
    const signature = placed.map(({ redraft, from, to }) =>
      // Ownership is part of it: our POST may return after the AI peer already showed the redraft.
      `${redraft.id}:${redraft.status}:${from}:${to}:${this.mine.has(redraft.id)}` +
        (['suggested', 'expired', 'conflict'].includes(redraft.status) ? `:${redraft.text}:${doc.sliceString(from, to)}:${redraft.passage_edited}` : '')
    ).join('|') + `|${this.canEdit}`
    if (signature !== this.signature) {
      const isNewSuggestion = placed.some(({ redraft }) => redraft.status === 'suggested' && !this.signature.includes(`${redraft.id}:suggested`))
      this.signature = signature
      this.view.dispatch({ effects: setRedraftMarks.of(buildMarks(placed, this, doc)) })
      if (isNewSuggestion) this.revealSuggestion(placed)
    }
    for (const [id, canvas] of this.canvases) {
      const redraft = this.entries.get(id)
      if (!redraft || !ACTIVE.has(redraft.status)) { this.canvases.delete(id); continue }
      if (this.mine.has(id)) canvas.withStop(() => this.cancel(id)) // asked before our POST returned
      canvas.render(redraft)
    }
    this.onActivity([...this.entries.values()].filter((redraft) => ACTIVE.has(redraft.status)))
  }

  /** A new suggestion of ours is scrolled into view (with room above the toasts), unless the user typed elsewhere. */
  revealSuggestion (placed) {
    const newest = placed.filter(({ redraft }) => redraft.status === 'suggested' && this.mine.has(redraft.id)).pop()
    if (!newest) return
    requestAnimationFrame(() => {
      const node = this.view.dom.querySelector(`.cm-redraft-suggestion[data-id="${CSS.escape(newest.redraft.id)}"]`)
      if (node) node.scrollIntoView({ block: 'nearest', behavior: 'smooth' })
    })
  }

  /** A fresh canvas for a widget that is being drawn; later steps update it in place. */
  canvasFor (id) {
    const canvas = new CanvasView()
    if (this.mine.has(id)) canvas.withStop(() => this.cancel(id))
    const redraft = this.entries.get(id)
    if (redraft) canvas.render(redraft)
    this.canvases.set(id, canvas)
    return canvas
  }

  isMine (id) { return this.mine.has(id) }

  /** Asks for a redraft of [from, to); `kind`, `instruction`, `mode`, `steps` as the API takes them. */
  async request ({ from, to, ...options }) {
    const body = { start: this.relativePosition(from), end: this.relativePosition(to), ...options }
    return this.send(body)
  }

  async send (body) {
    const full = { ...body, requester: this.requester() }
    for (const key of Object.keys(full)) if (full[key] === undefined || full[key] === '') delete full[key]
    try {
      const { id } = await this.api.requestRedraft(full)
      this.mine.set(id, { body, status: null })
      this.note(id, 'queued')
      this.follow(id)
      this.schedule()
      this.onHistory()
      return id
    } catch (error) {
      this.toasts.show(`The redraft was not started: ${error.advice || error.message}`, { kind: 'error', key: 'request' })
      return null
    }
  }

  /** Polls a redraft of ours until it settles: the AI peer may drop it from view before we look. */
  async follow (id, settledRank = RANK.suggested) {
    const own = this.mine.get(id)
    if (!own || own.following) return
    own.following = true
    let failures = 0
    for (let attempt = 0; this.mine.has(id); attempt++) {
      await sleep(POLL_MS[Math.min(attempt, POLL_MS.length - 1)])
      try {
        const redraft = await this.api.redraft(id)
        failures = 0
        this.note(id, redraft.status, redraft.error, redraft)
        if (RANK[redraft.status] >= settledRank) break
      } catch (error) {
        if (error.status === 404 || ++failures >= MAX_POLL_FAILURES) break
      }
    }
    own.following = false
  }

  note (id, status, detail, source = null) {
    const own = this.mine.get(id)
    if (!own || !movesOn(own.status, status)) return
    // An undo or redo this page asked for says so itself; a late poll or state must not undo it again.
    if (own.status !== null && (status === 'done' || status === 'undone') && RANK[own.status] >= RANK.done && !own.expecting) return
    const previous = own.status
    // An undo or redo asked for counts from when it was asked: typing while its answer travels ends it too.
    const edits = own.expecting ? own.editsAtRequest : this.localEdits
    own.status = status
    own.expecting = null
    if (status === 'done' || status === 'undone') this.onLanded()
    const why = detail ? ` (${detail})` : ''
    if (status === 'done') {
      this.lastApplied = id
      this.justActed = { id, action: 'applied', edits }
      const again = previous === 'undone'
      this.toasts.show(again ? 'Redraft put back in.' : 'Redraft applied.', {
        kind: 'success', key: 'redraft', timeoutMs: 0, actions: [{ label: 'Undo', run: () => this.undo(id), title: `Undo it (${keyLabel('Mod-KeyZ')} right away)` }]
      })
    } else if (status === 'suggested') {
      this.toasts.show('Suggestion ready: accept or reject it under the passage.', { key: 'redraft' })
    } else if (status === 'conflict' && previous === 'suggested') {
      this.toasts.show('Your suggestion no longer fits: the words it rewrites were changed since. Reject it, or ask again.', { kind: 'error', key: 'redraft' })
    } else if (status === 'conflict') {
      this.toasts.show(`The passage changed too much while the AI was writing${why || ' (someone deleted or rewrote it)'}, ` +
        'so the redraft was not put in. Nothing was changed: select the passage and try again.', { kind: 'error', key: 'redraft' })
    } else if (status === 'failed') {
      this.toasts.show(`The redraft failed${why}. Nothing was changed.`, { kind: 'error', key: 'redraft' })
    } else if (status === 'undone') {
      this.justActed = { id, action: 'undone', edits }
      this.toasts.show('The redraft was undone: the passage is back as it was.', {
        key: 'redraft', actions: [{ label: 'Redo', run: () => this.redo(id), title: `Put it back (${keyLabel('Mod-Shift-KeyZ')} right away)` }]
      })
    } else if (status === 'rejected' && !own.rejecting) {
      const by = (source && source.rejected_by) || this.entries.get(id)?.rejected_by
      const who = by && typeof by.name === 'string' && by.name ? by.name : 'Someone in the document'
      this.toasts.show(`${who} rejected your suggestion; the passage stays as it is.`, { key: 'redraft' })
    } else if (status === 'expired') {
      this.toasts.show('Your suggestion expired before anyone accepted it; the passage stays as it is.', { key: 'redraft' })
    }
  }

  /** Runs one API call on a redraft; its answer (the redraft's JSON) moves our record on. */
  async act (label, id, call) {
    try {
      const redraft = await call()
      if (redraft && redraft.status) this.note(id, redraft.status, redraft.error, redraft)
      this.onHistory()
      return redraft || {}
    } catch (error) {
      // A 409 carries the server's precise reason (who changed what since); say it as it is.
      const reason = error.status === 409 && error.message ? error.message : (error.advice || error.message)
      this.toasts.show(`Could not ${label}: ${reason}`, { kind: 'error', key: `act-${id}` })
      this.onHistory()
      return null
    }
  }

  expect (id, status) {
    const own = this.mine.get(id)
    if (own) Object.assign(own, { expecting: status, editsAtRequest: this.localEdits })
  }

  async undo (id = this.lastApplied) {
    if (!id) return this.toasts.show('There is no AI redraft of yours to undo.')
    this.expect(id, 'undone')
    const redraft = await this.act('undo the redraft', id, () => this.api.undo(id, this.requester()))
    if (redraft && !redraft.status) this.note(id, 'undone')
    return redraft
  }

  async redo (id) {
    this.expect(id, 'done')
    const redraft = await this.act('redo the redraft', id, () => this.api.redo(id, this.requester()))
    if (redraft && !redraft.status) this.note(id, 'done')
    return redraft
  }

  /**
   * Ctrl+Z right after this page's own redraft landed (`action` 'applied'), or Ctrl+Shift+Z right after it was
   * undone ('undone'): undo or redo that redraft rather than one's last keystroke. False when the key is the
   * editor's again (something else happened since, or one typed).
   */
  reverseJustActed (action) {
    const acted = this.justActed
    if (!acted || acted.action !== action || acted.edits !== this.localEdits) return false
    this.justActed = null
    if (action === 'applied') this.undo(acted.id)
    else this.redo(acted.id)
    return true
  }

  async accept (id) {
    const redraft = await this.act('accept the suggestion', id, () => this.api.accept(id, this.requester()))
    if (redraft && !(RANK[redraft.status] >= RANK.done)) this.follow(id, RANK.done)
  }

  async reject (id) {
    const own = this.mine.get(id)
    if (own) own.rejecting = true
    await this.act('reject the suggestion', id, () => this.api.cancel(id, this.requester()))
  }

  async cancel (id) { await this.act('stop the redraft', id, () => this.api.cancel(id, this.requester())) }

  /** The same request again, on the same anchors; the suggestion it replaces is rejected. */
  async retry (id) {
    const own = this.mine.get(id)
    if (!own) return this.toasts.show('Only the one who asked for this suggestion can retry it; accept or reject it instead.')
    own.rejecting = true
    const redraft = this.entries.get(id)
    await this.api.cancel(id, this.requester()).catch(() => null) // already gone is fine
    const body = { ...own.body, seed: undefined }
    if (redraft && redraft.anchors) Object.assign(body, { start: redraft.anchors.start, end: redraft.anchors.end })
    await this.send(body)
  }

  /** The suggestion at the cursor, else the newest one of ours, else any. */
  suggestionNear (position) {
    const suggested = [...this.entries.values()].filter((redraft) => redraft.status === 'suggested')
    const at = suggested.find((redraft) => {
      const from = this.absolutePosition(redraft.anchors && redraft.anchors.start)
      const to = this.absolutePosition(redraft.anchors && redraft.anchors.end)
      return from !== null && to !== null && from <= position && position <= to
    })
    return at || suggested.reverse().find((redraft) => this.mine.has(redraft.id)) || suggested[0] || null
  }

  runningOfMine () {
    return [...this.entries.values()].reverse().find((redraft) => ACTIVE.has(redraft.status) && this.mine.has(redraft.id)) || null
  }
}
