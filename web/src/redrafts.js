// The redraft board: asks the server for redrafts, follows the ones this page asked for, and
// draws everyone's from the AI peer's awareness state (so every collaborator sees the same
// live canvas, whoever asked). Drawing runs once per animation frame however fast steps come.
import * as Y from 'yjs'
import { CanvasView } from './canvas-view.js'
import { buildMarks, setRedraftMarks } from './redraft-marks.js'
import { keyLabel } from './shortcuts.js'

export const AI_PEER_NAME = 'Redraft AI'
export const isAiPeer = (state) => Boolean(state && state.user && (state.user.ai === true || state.user.name === AI_PEER_NAME))

// Statuses only move forward; a poll that answers late cannot take a redraft back.
const RANK = { queued: 0, running: 1, suggested: 2, done: 3, conflict: 3, failed: 3, cancelled: 3, rejected: 3, undone: 4 }
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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export class RedraftBoard {
  constructor ({ view, ytext, awareness, api, toasts, requester }) {
    Object.assign(this, { view, ytext, awareness, api, toasts, requester })
    this.canEdit = true
    this.mine = new Map() // id -> { body, status }: what this page asked for
    this.entries = new Map() // id -> the AI peer's latest word on it
    this.canvases = new Map() // id -> the CanvasView on screen
    this.lastApplied = null
    this.signature = ''
    this.frame = 0
    this.onActivity = () => {}
    awareness.on('change', ({ added, updated, removed }) => {
      const changed = [...added, ...updated, ...removed]
      if (changed.some((id) => id !== awareness.clientID)) this.schedule()
    })
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

  refresh () {
    this.entries = new Map()
    for (const state of this.awareness.getStates().values()) {
      if (!isAiPeer(state) || !Array.isArray(state.redrafts)) continue
      for (const redraft of state.redrafts) if (redraft && redraft.id) this.entries.set(redraft.id, redraft)
    }
    const placed = []
    for (const redraft of this.entries.values()) {
      if (this.mine.has(redraft.id)) this.note(redraft.id, redraft.status, redraft.error)
      const anchors = redraft.anchors || {}
      const start = this.absolutePosition(anchors.start)
      const end = this.absolutePosition(anchors.end)
      if (start !== null && end !== null) placed.push({ redraft, from: Math.min(start, end), to: Math.max(start, end) })
    }
    placed.sort((a, b) => a.from - b.from || a.to - b.to)
    const doc = this.view.state.doc
    const signature = placed.map(({ redraft, from, to }) =>
      // Ownership is part of it: our POST may return after the AI peer already showed the redraft.
      `${redraft.id}:${redraft.status}:${from}:${to}:${this.mine.has(redraft.id)}` + (redraft.status === 'suggested' ? `:${redraft.text}:${doc.sliceString(from, to)}` : '')
    ).join('|') + `|${this.canEdit}`
    if (signature !== this.signature) {
      this.signature = signature
      this.view.dispatch({ effects: setRedraftMarks.of(buildMarks(placed, this, doc)) })
    }
    for (const [id, canvas] of this.canvases) {
      const redraft = this.entries.get(id)
      if (!redraft || !ACTIVE.has(redraft.status)) { this.canvases.delete(id); continue }
      if (this.mine.has(id)) canvas.withStop(() => this.cancel(id)) // asked before our POST returned
      canvas.render(redraft)
    }
    this.onActivity([...this.entries.values()].filter((redraft) => ACTIVE.has(redraft.status)))
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
        this.note(id, redraft.status, redraft.error)
        if (RANK[redraft.status] >= settledRank) break
      } catch (error) {
        if (error.status === 404 || ++failures >= MAX_POLL_FAILURES) break
      }
    }
    own.following = false
  }

  note (id, status, detail) {
    const own = this.mine.get(id)
    if (!own || !(status in RANK) || (own.status !== null && RANK[status] <= RANK[own.status])) return
    own.status = status
    const why = detail ? ` (${detail})` : ''
    if (status === 'done') {
      this.lastApplied = id
      this.toasts.show('Redraft applied.', {
        kind: 'success', key: 'redraft', timeoutMs: 15000, actions: [{ label: 'Undo', run: () => this.undo(id), title: keyLabel('Mod-Alt-KeyZ') }]
      })
    } else if (status === 'suggested') {
      this.toasts.show('Suggestion ready: accept or reject it in the text.', { key: 'redraft' })
    } else if (status === 'conflict') {
      this.toasts.show(`The passage changed too much while the AI was writing${why || ' (someone deleted or rewrote it)'}, ` +
        'so the redraft was not put in. Nothing was changed: select the passage and try again.', { kind: 'error', key: 'redraft' })
    } else if (status === 'failed') {
      this.toasts.show(`The redraft failed${why}. Nothing was changed.`, { kind: 'error', key: 'redraft' })
    } else if (status === 'undone') {
      this.toasts.show('The redraft was undone: the passage is back as it was.', { key: 'redraft' })
    }
  }

  /** Runs one API call on a redraft; its answer (the redraft's JSON) moves our record on. */
  async act (label, id, call) {
    try {
      const redraft = await call()
      if (redraft && redraft.status) this.note(id, redraft.status, redraft.error)
      return redraft || {}
    } catch (error) {
      const conflict = error.status === 409
        ? ': the text there changed since, so it cannot be done without overwriting someone’s edits'
        : `: ${error.advice || error.message}`
      this.toasts.show(`Could not ${label}${conflict}`, { kind: 'error', key: `act-${id}` })
      return null
    }
  }

  async undo (id = this.lastApplied) {
    if (!id) return this.toasts.show('There is no AI redraft of yours to undo.')
    if (await this.act('undo the redraft', id, () => this.api.undo(id))) this.note(id, 'undone')
  }

  async accept (id) {
    const redraft = await this.act('accept the suggestion', id, () => this.api.accept(id))
    if (redraft && !(RANK[redraft.status] >= RANK.done)) this.follow(id, RANK.done)
  }

  async reject (id) { await this.act('reject the suggestion', id, () => this.api.cancel(id)) }
  async cancel (id) { await this.act('stop the redraft', id, () => this.api.cancel(id)) }

  /** The same request again, on the same anchors; the suggestion it replaces is rejected. */
  async retry (id) {
    const own = this.mine.get(id)
    if (!own) return this.toasts.show('Only the one who asked for this suggestion can retry it; accept or reject it instead.')
    const redraft = this.entries.get(id)
    await this.api.cancel(id).catch(() => null) // already gone is fine
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
