// The blocks a redraft shows under its passage, as CodeMirror widgets: the live canvas of a running
// one, and a suggestion with its buttons. CodeMirror draws them in its own update cycle: `eq` says when
// the DOM can stay as it is, `updateDOM` brings the same redraft's DOM up to date in place (a canvas
// moves on a step at a time, so its nodes are reused), `destroy` lets go of a canvas that left.
// Buttons reach the redraft board through the `redraftActions` facet, so a widget holds data only.
import { Facet } from '@codemirror/state'
import { WidgetType } from '@codemirror/view'
import { CanvasView, DEFAULT_COLOR } from './canvas-view.js'
import { changedShare, wordDiff } from './diff.js'
import { safeColor } from './trust.js'

export const BEFORE_AFTER_ABOVE = 0.5 // a suggestion changing more than half the passage reads better as two blocks

/** What the widgets' buttons do: {accept, reject, retry, stop}, each `(view, id)`. */
export const redraftActions = Facet.define({ combine: (values) => values[0] || null })

const act = (view, name, id) => view.state.facet(redraftActions)[name](view, id)

export const requesterOf = (redraft) => {
  const requester = redraft.requester && typeof redraft.requester === 'object' ? redraft.requester : {}
  return { name: typeof requester.name === 'string' && requester.name ? requester.name : 'someone', color: safeColor(requester.color, DEFAULT_COLOR) }
}

// A canvas widget's DOM -> the CanvasView that updates it in place. Only the widgets below touch it.
const canvases = new WeakMap()

export class CanvasWidget extends WidgetType {
  constructor (redraft, isMine) {
    super()
    this.redraft = redraft // the AI peer's latest entry: a new step is a new entry
    this.isMine = isMine // the one who asked gets a Stop button
  }

  eq (other) { return other.redraft === this.redraft && other.isMine === this.isMine }

  toDOM (view) {
    const canvas = new CanvasView()
    canvases.set(canvas.dom, canvas)
    this.draw(canvas, view)
    return canvas.dom
  }

  updateDOM (dom, view, from) {
    const canvas = canvases.get(dom)
    if (!canvas || !from || from.redraft.id !== this.redraft.id) return false // another redraft's canvas: a fresh one
    this.draw(canvas, view)
    return true
  }

  draw (canvas, view) {
    // Ownership may come after the canvas: our POST can return after the AI peer already showed the redraft.
    if (this.isMine) canvas.withStop(() => act(view, 'stop', this.redraft.id))
    canvas.render(this.redraft)
  }

  destroy (dom) { canvases.delete(dom) }
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

function noteFor (redraft, current) {
  const original = typeof redraft.original === 'string' ? redraft.original : null
  if (redraft.status === 'expired') return 'This suggestion expired before anyone accepted it; the text stays as it is.'
  if (redraft.status === 'conflict') {
    return 'The words it rewrites were changed since (or the passage was deleted), so it cannot go in ' +
      'without overwriting that. Reject it, or ask again.'
  }
  if (redraft.passage_edited === true || (original !== null && original !== current)) {
    return 'The passage was edited after the AI wrote this: accepting puts the AI’s changes in around those edits.'
  }
  return null
}

export class SuggestionWidget extends WidgetType {
  constructor (redraft, current, { canEdit, isMine }) {
    super()
    this.redraft = redraft
    this.current = current // the passage as the document has it now: the diff's left side
    this.canEdit = canEdit
    this.isMine = isMine // ours: Retry shows
  }

  eq (other) {
    return other.redraft.id === this.redraft.id && other.redraft.status === this.redraft.status && other.current === this.current &&
      other.redraft.text === this.redraft.text && other.canEdit === this.canEdit && other.isMine === this.isMine
  }

  get estimatedHeight () { return 80 }

  toDOM (view) {
    const dom = document.createElement('div')
    this.fill(dom, view)
    return dom
  }

  updateDOM (dom, view, from) {
    if (!from || from.redraft.id !== this.redraft.id) return false
    this.fill(dom, view)
    return true
  }

  /** Draws the suggestion into `dom`, whatever it held before. */
  fill (dom, view) {
    const { id, status } = this.redraft
    const requester = requesterOf(this.redraft)
    dom.className = 'cm-redraft-suggestion'
    dom.dataset.id = id
    dom.dataset.status = status
    dom.style.setProperty('--who', requester.color)
    const label = document.createElement('span')
    label.className = 'cm-redraft-label'
    label.textContent = `Suggestion for ${requester.name}` + (status === 'expired' ? ' · expired' : status === 'conflict' ? ' · no longer fits' : '')
    const children = [label]
    const suggested = typeof this.redraft.text === 'string' ? this.redraft.text : ''
    const parts = wordDiff(this.current, suggested)
    if (changedShare(parts) > BEFORE_AFTER_ABOVE) {
      dom.classList.add('is-rewrite')
      children.push(block('cm-redraft-before', 'Now', pieces(parts, ['keep', 'delete'])),
        block('cm-redraft-after', 'Suggested', pieces(parts, ['keep', 'insert'])))
    } else {
      const diff = document.createElement('div')
      diff.className = 'cm-redraft-diff'
      diff.append(...pieces(parts, ['keep', 'delete', 'insert']))
      children.push(diff)
    }
    const text = noteFor(this.redraft, this.current)
    if (text) children.push(Object.assign(document.createElement('p'), { className: 'cm-redraft-note', textContent: text }))
    if (this.canEdit && (status === 'suggested' || status === 'conflict' || this.isMine)) {
      const actions = document.createElement('div')
      actions.className = 'cm-redraft-actions'
      if (status === 'suggested') actions.append(button('Accept', 'accept', () => act(view, 'accept', id), 'Accept this suggestion'))
      if (status === 'suggested' || status === 'conflict') actions.append(button('Reject', 'reject', () => act(view, 'reject', id), 'Reject this suggestion'))
      // An expired suggestion of one's own can be asked for again, on the passage as it is now.
      if (this.isMine) actions.append(button('Retry', 'retry', () => act(view, 'retry', id), 'Ask again with the same instruction'))
      children.push(actions)
    }
    dom.replaceChildren(...children)
  }
}
