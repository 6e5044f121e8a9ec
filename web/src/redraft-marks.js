// How redrafts show in the text. The passage stays in place and editable: a running redraft marks
// it and shows its live canvas in a block under the passage's last line; a suggestion marks it and
// shows the proposed text there (an inline diff for small edits, before and after for a rewrite)
// with its buttons; a finished one is highlighted for a moment. Nothing ever replaces the text, so a
// collaborator typing inside the passage keeps their caret and their words while the AI writes.
// The marks live in a state field (block widgets must) that the redraft board resets whenever the
// AI peer's state changes and that edits map in between.
import { EditorSelection, EditorState, StateEffect, StateField, Transaction } from '@codemirror/state'
import { Decoration, EditorView, WidgetType } from '@codemirror/view'
import { DEFAULT_COLOR } from './canvas-view.js'
import { changedShare, wordDiff } from './diff.js'
import { safeColor } from './trust.js'

export const setRedraftMarks = StateEffect.define()
export const BEFORE_AFTER_ABOVE = 0.5 // a suggestion changing more than half the passage reads better as two blocks

export const redraftMarks = StateField.define({
  create: () => Decoration.none,
  update (marks, transaction) {
    for (const effect of transaction.effects) if (effect.is(setRedraftMarks)) return effect.value
    return marks.map(transaction.changes)
  },
  provide: (field) => EditorView.decorations.from(field)
})

const requesterOf = (redraft) => {
  const requester = redraft.requester && typeof redraft.requester === 'object' ? redraft.requester : {}
  return { name: typeof requester.name === 'string' && requester.name ? requester.name : 'someone', color: safeColor(requester.color, DEFAULT_COLOR) }
}

class CanvasWidget extends WidgetType {
  constructor (id, board) {
    super()
    this.id = id
    this.board = board
  }

  eq (other) { return other.id === this.id } // same redraft: keep the DOM, the board updates it in place
  toDOM () { return this.board.canvasFor(this.id).dom }
  get estimatedHeight () { return 60 }
}

function button (label, className, onClick, title) {
  const node = document.createElement('button')
  node.type = 'button'
  node.className = className
  node.textContent = label
  if (title) node.title = title // a hint only: the accessible name stays the visible label
  node.addEventListener('mousedown', (event) => event.preventDefault()) // keep the editor's selection
  node.addEventListener('click', onClick)
  return node
}

function pieces (parts, keep) {
  return parts.filter((part) => keep.includes(part.op)).map((part) => {
    const node = document.createElement(part.op === 'keep' ? 'span' : part.op === 'delete' ? 'del' : 'ins')
    node.textContent = part.text
    return node
  })
}

function block (className, heading, children) {
  const node = document.createElement('div')
  node.className = className
  const title = document.createElement('span')
  title.className = 'cm-redraft-side'
  title.textContent = heading
  node.append(title, ...children)
  return node
}

class SuggestionWidget extends WidgetType {
  constructor (redraft, current, board) {
    super()
    this.redraft = redraft
    this.current = current // the passage as the document has it now: the diff's left side
    this.board = board
    // Read now, not in toDOM: eq() must see what the DOM was drawn with. Our POST may return after the AI
    // peer showed the suggestion, and a widget equal to the old one would keep the DOM without Retry.
    this.canEdit = board.canEdit
    this.mine = board.isMine(redraft.id)
  }

  eq (other) {
    return other.redraft.id === this.redraft.id && other.redraft.status === this.redraft.status && other.current === this.current &&
      other.redraft.text === this.redraft.text && other.canEdit === this.canEdit && other.mine === this.mine
  }

  get estimatedHeight () { return 80 }

  toDOM () {
    const { id, status } = this.redraft
    const requester = requesterOf(this.redraft)
    const dom = document.createElement('div')
    dom.className = 'cm-redraft-suggestion'
    dom.dataset.id = id
    dom.dataset.status = status
    dom.style.setProperty('--who', requester.color)
    const label = document.createElement('span')
    label.className = 'cm-redraft-label'
    label.textContent = `Suggestion for ${requester.name}` + (status === 'expired' ? ' · expired' : status === 'conflict' ? ' · no longer fits' : '')
    dom.append(label)
    const suggested = typeof this.redraft.text === 'string' ? this.redraft.text : ''
    const parts = wordDiff(this.current, suggested)
    if (changedShare(parts) > BEFORE_AFTER_ABOVE) {
      dom.classList.add('is-rewrite')
      dom.append(block('cm-redraft-before', 'Now', pieces(parts, ['keep', 'delete'])),
        block('cm-redraft-after', 'Suggested', pieces(parts, ['keep', 'insert'])))
    } else {
      const diff = document.createElement('div')
      diff.className = 'cm-redraft-diff'
      diff.append(...pieces(parts, ['keep', 'delete', 'insert']))
      dom.append(diff)
    }
    const original = typeof this.redraft.original === 'string' ? this.redraft.original : null
    const note = document.createElement('p')
    note.className = 'cm-redraft-note'
    if (status === 'expired') {
      note.textContent = 'This suggestion expired before anyone accepted it; the text stays as it is.'
      dom.append(note)
    } else if (status === 'conflict') {
      note.textContent = 'The words it rewrites were changed since (or the passage was deleted), so it cannot go in ' +
        'without overwriting that. Reject it, or ask again.'
      dom.append(note)
    } else if (this.redraft.passage_edited === true || (original !== null && original !== this.current)) {
      note.textContent = 'The passage was edited after the AI wrote this: accepting puts the AI’s changes in around those edits.'
      dom.append(note)
    }
    if (this.canEdit && (status === 'suggested' || status === 'conflict' || this.mine)) {
      const actions = document.createElement('div')
      actions.className = 'cm-redraft-actions'
      if (status === 'suggested') actions.append(button('Accept', 'accept', () => this.board.accept(id), 'Accept this suggestion'))
      if (status === 'suggested' || status === 'conflict') actions.append(button('Reject', 'reject', () => this.board.reject(id), 'Reject this suggestion'))
      // An expired suggestion of one's own can be asked for again, on the passage as it is now.
      if (this.mine) actions.append(button('Retry', 'retry', () => this.board.retry(id), 'Ask again with the same instruction'))
      dom.append(actions)
    }
    return dom
  }
}

const APPLIED = Decoration.mark({ class: 'cm-redraft-applied' })
const SHOWN_IN_PLACE = new Set(['queued', 'running', 'suggested', 'expired', 'conflict'])

function passageMark (redraft) {
  const className = redraft.status === 'queued' || redraft.status === 'running' ? 'cm-redraft-busy' : 'cm-redraft-pending'
  return Decoration.mark({ class: className, attributes: { style: `--who: ${requesterOf(redraft).color}`, 'data-redraft': String(redraft.id) } })
}

/**
 * The decorations for the redrafts in view: [{redraft, from, to}] sorted by `from`. The passage gets
 * a mark; its canvas or suggestion a block under the passage's last line.
 */
export function buildMarks (placed, board, doc) {
  const ranges = []
  for (const { redraft, from, to } of placed) {
    const status = redraft.status
    // A conflict waits for a person only as a suggestion; an applied redraft that conflicted is over (its message says so).
    if (SHOWN_IN_PLACE.has(status) && (status !== 'conflict' || redraft.mode === 'suggest')) {
      if (from < to) ranges.push(passageMark(redraft).range(from, to))
      const widget = status === 'queued' || status === 'running'
        ? new CanvasWidget(redraft.id, board)
        : new SuggestionWidget(redraft, doc.sliceString(from, to), board)
      ranges.push(Decoration.widget({ widget, block: true, side: 1 }).range(doc.lineAt(to).to))
    } else if (status === 'done' && from < to) {
      ranges.push(APPLIED.range(from, to))
    }
  }
  return Decoration.set(ranges, true)
}

/**
 * A selection that spans exactly a redrafted passage keeps spanning it when the redraft lands or is
 * undone: mapped as CodeMirror maps ranges (not growing at the ends), a character-level diff would
 * leave it on an arbitrary piece of the new text. Carets map as usual, so whoever types keeps typing.
 */
export const redraftSelection = EditorState.transactionFilter.of((transaction) => {
  if (!transaction.docChanged || transaction.annotation(Transaction.userEvent) || transaction.selection) return transaction
  const { main } = transaction.startState.selection
  if (main.empty) return transaction
  let spans = false
  transaction.startState.field(redraftMarks).between(main.from, main.to, (from, to, mark) => {
    if (from === main.from && to === main.to && mark.spec.class) spans = true
  })
  if (!spans) return transaction
  const from = transaction.changes.mapPos(main.from, -1)
  const to = transaction.changes.mapPos(main.to, 1)
  const range = main.anchor <= main.head ? EditorSelection.range(from, to) : EditorSelection.range(to, from)
  return [transaction, { selection: EditorSelection.create([range]), sequential: true }]
})
