// How redrafts show in the text: a running one replaces its range with the live canvas, a
// finished one is highlighted for a moment, a suggestion shows as an inline diff with its
// buttons. The marks live in a state field (replacements may cross line breaks) that the
// redraft board resets whenever the AI peer's state changes and that edits map in between.
import { StateEffect, StateField } from '@codemirror/state'
import { Decoration, EditorView, WidgetType } from '@codemirror/view'
import { wordDiff } from './diff.js'

export const setRedraftMarks = StateEffect.define()

export const redraftMarks = StateField.define({
  create: () => Decoration.none,
  update (marks, transaction) {
    for (const effect of transaction.effects) if (effect.is(setRedraftMarks)) return effect.value
    return marks.map(transaction.changes)
  },
  provide: (field) => EditorView.decorations.from(field)
})

class CanvasWidget extends WidgetType {
  constructor (id, board) {
    super()
    this.id = id
    this.board = board
  }

  eq (other) { return other.id === this.id } // same redraft: keep the DOM, the board updates it in place
  toDOM () { return this.board.canvasFor(this.id).dom }
}

function button (label, className, onClick, ariaLabel) {
  const node = document.createElement('button')
  node.type = 'button'
  node.className = className
  node.textContent = label
  if (ariaLabel) node.setAttribute('aria-label', ariaLabel)
  node.addEventListener('mousedown', (event) => event.preventDefault()) // keep the editor's selection
  node.addEventListener('click', onClick)
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
    return other.redraft.id === this.redraft.id && other.current === this.current && other.redraft.text === this.redraft.text &&
      other.canEdit === this.canEdit && other.mine === this.mine
  }

  toDOM () {
    const { id, requester = {} } = this.redraft
    const dom = document.createElement('span')
    dom.className = 'cm-redraft-suggestion'
    dom.dataset.id = id
    dom.style.setProperty('--who', requester.color || '#7c3aed')
    const label = document.createElement('span')
    label.className = 'cm-redraft-label'
    label.textContent = `Suggestion for ${requester.name || 'someone'}`
    dom.append(label)
    for (const part of wordDiff(this.current, this.redraft.text || '')) {
      const piece = document.createElement(part.op === 'keep' ? 'span' : part.op === 'delete' ? 'del' : 'ins')
      piece.textContent = part.text
      dom.append(piece)
    }
    if (this.canEdit) {
      const actions = document.createElement('span')
      actions.className = 'cm-redraft-actions'
      actions.contentEditable = 'false'
      actions.append(
        button('Accept', 'accept', () => this.board.accept(id), 'Accept this suggestion'),
        button('Reject', 'reject', () => this.board.reject(id), 'Reject this suggestion'))
      if (this.mine) actions.append(button('Retry', 'retry', () => this.board.retry(id), 'Ask again with the same instruction'))
      dom.append(actions)
    }
    return dom
  }
}

const APPLIED = Decoration.mark({ class: 'cm-redraft-applied' })

/**
 * The decorations for the redrafts in view: [{redraft, from, to}] sorted by `from`. Ranges that
 * overlap one already replaced are skipped: two replacements of one span cannot both show.
 */
export function buildMarks (placed, board, doc) {
  const ranges = []
  let replacedTo = -1
  for (const { redraft, from, to } of placed) {
    const status = redraft.status
    if (status === 'queued' || status === 'running' || status === 'suggested') {
      if (from < replacedTo || (from === replacedTo && from !== to)) continue
      const widget = status === 'suggested'
        ? new SuggestionWidget(redraft, doc.sliceString(from, to), board)
        : new CanvasWidget(redraft.id, board)
      ranges.push(from === to ? Decoration.widget({ widget, side: 1 }).range(from) : Decoration.replace({ widget }).range(from, to))
      replacedTo = to
    } else if (status === 'done' && from < to) {
      ranges.push(APPLIED.range(from, to))
    }
  }
  return Decoration.set(ranges, true)
}
