// The redraft board, as CodeMirror extensions: a view plugin that asks the server for redrafts,
// follows the ones this page asked for, and places everyone's from the AI peer's awareness state into
// the `shownRedrafts` field (so every collaborator sees the same live canvas, whoever asked). It owns
// its subscriptions: the awareness listener, the animation frame and the polls end with the editor.
// Drawing runs once per animation frame however fast steps come, the way y-codemirror.next's plugins
// turn awareness changes into editor transactions.
import { Facet, Prec, Transaction } from '@codemirror/state'
import { ViewPlugin, keymap } from '@codemirror/view'
import { absolutePosition, relativePosition } from './anchors.js'
import { aiRedrafts, passageOf, placeRedrafts } from './redraft-awareness.js'
import { isShowing, showRedrafts, shownRedrafts } from './redraft-field.js'
import { pollRedraft } from './redraft-polling.js'
import { redraftSelection } from './redraft-selection.js'
import { ACTIVE, SUGGESTION_SHOWN, hasReached, movesOn } from './redraft-status.js'
import { NOTHING_TO_UNDO, ONLY_REQUESTER_RETRIES, couldNot, notStarted, statusToast } from './redraft-toasts.js'
import { redraftActions } from './redraft-widgets.js'

/**
 * What the board works with: `ytext` and `awareness` of the room, the document's `api`, `toasts`, the
 * page's state `page` (it reads `session`, `role` and `user`), and what it tells the page: `onActivity`
 * (the AI peer's running redrafts), `onHistory` (a redraft of this document changed) and `onLanded` (one of
 * ours landed or was taken back: typing after it is a new undo step).
 */
const boardConfig = Facet.define({ combine: (values) => values[0] })

class RedraftBoard {
  constructor (view) {
    this.view = view
    this.config = view.state.facet(boardConfig)
    this.mine = new Map() // id -> { body, status, … }: what this page asked for
    this.entries = new Map() // id -> the AI peer's latest word on it
    this.lastApplied = null
    this.justActed = null // {id, action: 'applied' | 'undone', edits}: what Ctrl+Z / Ctrl+Shift+Z take back
    this.localEdits = 0 // this page's own edits so far: typing after a redraft landed makes Ctrl+Z about the typing again
    this.frame = 0
    this.isDestroyed = false
    this.onAwareness = ({ added, updated, removed }) => {
      const changed = [...added, ...updated, ...removed]
      if (changed.some((id) => id !== this.config.awareness.clientID)) this.schedule()
    }
    this.config.awareness.on('change', this.onAwareness)
  }

  /** The server's session answer, null until it came: until then no state is the AI peer's. */
  get session () { return this.config.page.session }

  update (update) {
    if (update.transactions.some((tr) => tr.docChanged && tr.annotation(Transaction.userEvent))) this.localEdits++
    // A pending suggestion's diff is against the passage as it is now, so redraw it.
    if (update.docChanged && [...this.entries.values()].some((redraft) => SUGGESTION_SHOWN.has(redraft.status))) this.schedule()
  }

  destroy () {
    this.isDestroyed = true // ends the polls at their next turn
    this.config.awareness.off('change', this.onAwareness)
    cancelAnimationFrame(this.frame)
  }

  schedule () {
    if (!this.frame && !this.isDestroyed) this.frame = requestAnimationFrame(() => { this.frame = 0; this.refresh() })
  }

  absolutePosition (encoded) { return absolutePosition(this.config.ytext, encoded, this.view.state.doc.length) }

  requester () {
    const { user } = this.config.page
    return { name: user.name, color: user.color }
  }

  refresh () {
    const before = this.entries
    this.entries = aiRedrafts(this.config.awareness.getStates(), this.session)
    for (const redraft of this.entries.values()) {
      const old = before.get(redraft.id)
      if (!old || old.status !== redraft.status) this.config.onHistory()
      if (this.mine.has(redraft.id)) this.note(redraft.id, redraft.status, redraft.error, redraft)
    }
    const placed = placeRedrafts(this.entries, (anchor) => this.absolutePosition(anchor))
      .map((entry) => ({ ...entry, isMine: this.mine.has(entry.redraft.id) }))
    const next = { placed, canEdit: this.config.page.role !== 'read' }
    const drawn = this.view.state.field(shownRedrafts)
    if (!isShowing(drawn, next, this.view.state.doc)) {
      const wasSuggested = (id) => drawn.placed.some(({ redraft }) => redraft.id === id && redraft.status === 'suggested')
      const isNewSuggestion = placed.some(({ redraft }) => redraft.status === 'suggested' && !wasSuggested(redraft.id))
      this.view.dispatch({ effects: showRedrafts.of(next) })
      if (isNewSuggestion) this.revealSuggestion(placed)
    }
    this.config.onActivity([...this.entries.values()].filter((redraft) => ACTIVE.has(redraft.status)))
  }

  /** A new suggestion of ours is scrolled into view (with room above the toasts), unless the user typed elsewhere. */
  revealSuggestion (placed) {
    const newest = placed.filter(({ redraft, isMine }) => redraft.status === 'suggested' && isMine).pop()
    if (!newest) return
    requestAnimationFrame(() => {
      const node = this.view.dom.querySelector(`.cm-redraft-suggestion[data-id="${CSS.escape(newest.redraft.id)}"]`)
      if (node) node.scrollIntoView({ block: 'nearest', behavior: 'smooth' })
    })
  }

  /** Asks for a redraft of [from, to); `kind`, `instruction`, `mode`, `steps` as the API takes them. */
  async request ({ from, to, ...options }) {
    const { ytext } = this.config
    return this.send({ start: relativePosition(ytext, from), end: relativePosition(ytext, to), ...options })
  }

  async send (body) {
    try {
      const { id } = await this.config.api.requestRedraft({ ...body, requester: this.requester() })
      this.mine.set(id, { body, status: null })
      this.note(id, 'queued')
      this.follow(id)
      this.schedule()
      this.config.onHistory()
      return id
    } catch (error) {
      this.config.toasts.show(...notStarted(error))
      return null
    }
  }

  /** Polls a redraft of ours until it reaches `settled`: the AI peer may drop it from view before we look. */
  async follow (id, settled = 'suggested') {
    const own = this.mine.get(id)
    if (!own || own.following) return
    own.following = true
    await pollRedraft(this.config.api, id, {
      isWanted: () => !this.isDestroyed && this.mine.has(id),
      onAnswer: (redraft) => this.note(id, redraft.status, redraft.error, redraft),
      isSettled: (redraft) => hasReached(redraft.status, settled)
    })
    own.following = false
  }

  /** Moves our record of redraft `id` on to `status`, and says so in a toast. */
  note (id, status, detail, source = null) {
    const own = this.mine.get(id)
    if (!own || !movesOn(own.status, status)) return
    // An undo or redo this page asked for says so itself; a late poll or state must not undo it again.
    if (own.status !== null && (status === 'done' || status === 'undone') && hasReached(own.status, 'done') && !own.expecting) return
    const previous = own.status
    // An undo or redo asked for counts from when it was asked: typing while its answer travels ends it too.
    const edits = own.expecting ? own.editsAtRequest : this.localEdits
    own.status = status
    own.expecting = null
    if (status === 'done' || status === 'undone') this.config.onLanded()
    if (status === 'done') {
      this.lastApplied = id
      this.justActed = { id, action: 'applied', edits }
    } else if (status === 'undone') {
      this.justActed = { id, action: 'undone', edits }
    }
    const toast = statusToast(status, {
      previous,
      detail,
      rejectedBy: (source && source.rejected_by) || this.entries.get(id)?.rejected_by,
      isOwnRejection: Boolean(own.rejecting),
      undo: () => this.undo(id),
      redo: () => this.redo(id)
    })
    if (toast) this.config.toasts.show(...toast)
  }

  /** Runs one API call on a redraft; its answer (the redraft's JSON) moves our record on. */
  async act (label, id, call) {
    try {
      const redraft = await call()
      if (redraft && redraft.status) this.note(id, redraft.status, redraft.error, redraft)
      this.config.onHistory()
      return redraft || {}
    } catch (error) {
      this.config.toasts.show(...couldNot(label, id, error))
      this.config.onHistory()
      return null
    }
  }

  expect (id, status) {
    const own = this.mine.get(id)
    if (own) Object.assign(own, { expecting: status, editsAtRequest: this.localEdits })
  }

  async undo (id = this.lastApplied) {
    if (!id) return this.config.toasts.show(NOTHING_TO_UNDO)
    this.expect(id, 'undone')
    const redraft = await this.act('undo the redraft', id, () => this.config.api.undo(id, this.requester()))
    if (redraft && !redraft.status) this.note(id, 'undone')
    return redraft
  }

  async redo (id) {
    this.expect(id, 'done')
    const redraft = await this.act('redo the redraft', id, () => this.config.api.redo(id, this.requester()))
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
    const redraft = await this.act('accept the suggestion', id, () => this.config.api.accept(id, this.requester()))
    if (redraft && !hasReached(redraft.status, 'done')) this.follow(id, 'done')
  }

  async reject (id) {
    const own = this.mine.get(id)
    if (own) own.rejecting = true
    await this.act('reject the suggestion', id, () => this.config.api.cancel(id, this.requester()))
  }

  async cancel (id) { await this.act('stop the redraft', id, () => this.config.api.cancel(id, this.requester())) }

  /** The same request again, on the same anchors; the suggestion it replaces is rejected. */
  async retry (id) {
    const own = this.mine.get(id)
    if (!own) return this.config.toasts.show(ONLY_REQUESTER_RETRIES)
    own.rejecting = true
    const redraft = this.entries.get(id)
    await this.config.api.cancel(id, this.requester()).catch(() => null) // already gone is fine
    const body = { ...own.body, seed: undefined }
    if (redraft && redraft.anchors) Object.assign(body, { start: redraft.anchors.start, end: redraft.anchors.end })
    await this.send(body)
  }

  /** The suggestion at the cursor, else the newest one of ours, else any. */
  suggestionNear (position) {
    const suggested = [...this.entries.values()].filter((redraft) => redraft.status === 'suggested')
    const at = suggested.find((redraft) => {
      const passage = passageOf(redraft, (anchor) => this.absolutePosition(anchor))
      return passage !== null && passage[0] <= position && position <= passage[1]
    })
    return at || suggested.reverse().find((redraft) => this.mine.has(redraft.id)) || suggested[0] || null
  }

  runningOfMine () {
    return [...this.entries.values()].reverse().find((redraft) => ACTIVE.has(redraft.status) && this.mine.has(redraft.id)) || null
  }
}

export const redraftBoardPlugin = ViewPlugin.fromClass(RedraftBoard)

const onBoard = (run) => (view, ...args) => {
  const board = view.plugin(redraftBoardPlugin)
  return board ? run(board, ...args) : false
}

/** The redraft board and everything it draws with: `config` as boardConfig above says. */
export function redraftBoard (config) {
  return [
    boardConfig.of(config),
    shownRedrafts,
    redraftSelection,
    redraftBoardPlugin,
    redraftActions.of({
      accept: onBoard((board, id) => board.accept(id)),
      reject: onBoard((board, id) => board.reject(id)),
      retry: onBoard((board, id) => board.retry(id)),
      stop: onBoard((board, id) => board.cancel(id))
    }),
    // Ctrl+Z right after one's own redraft landed undoes it (and Ctrl+Shift+Z puts it back); typing ends that.
    Prec.highest(keymap.of([
      { key: 'Mod-z', run: onBoard((board) => board.reverseJustActed('applied')) },
      { key: 'Mod-Shift-z', run: onBoard((board) => board.reverseJustActed('undone')) },
      { key: 'Mod-y', run: onBoard((board) => board.reverseJustActed('undone')) }
    ]))
  ]
}
