// The others' cursors and selections in the text, each with its person's name, drawn from awareness
// (the role y-codemirror.next's remote selections play, which this replaces for three reasons): a
// renamed person's label changes at once (the stock caret widget compared colours only, so the old
// name stayed), colours reach a `style` only when strict (trust.js), and a viewer's caret, stamped
// `user.role = "viewer"` by the server, says that they are viewing. It also publishes this page's
// own cursor, as the stock plugin did.
import { Annotation, RangeSet } from '@codemirror/state'
import { Decoration, EditorView, ViewPlugin, WidgetType } from '@codemirror/view'
import * as Y from 'yjs'
import { safeColor } from './trust.js'

const FALLBACK = '#59636e'
const refresh = Annotation.define()

class CaretWidget extends WidgetType {
  constructor (color, label, isViewer) {
    super()
    Object.assign(this, { color, label, isViewer })
  }

  eq (other) { return other.color === this.color && other.label === this.label && other.isViewer === this.isViewer }

  toDOM () {
    const caret = document.createElement('span')
    caret.className = 'cm-ySelectionCaret' + (this.isViewer ? ' is-viewer' : '')
    caret.style.backgroundColor = this.color
    caret.style.borderColor = this.color
    const dot = document.createElement('div')
    dot.className = 'cm-ySelectionCaretDot'
    const info = document.createElement('div')
    info.className = 'cm-ySelectionInfo'
    info.textContent = this.label
    caret.append('\u2060', dot, '\u2060', info, '\u2060')
    return caret
  }

  get estimatedHeight () { return -1 }
  ignoreEvent () { return true }
}

/** The label on a person's caret: their name, and that they only view where the server says so. */
export function caretLabel (user) {
  const name = user && typeof user.name === 'string' && user.name.trim() ? user.name : 'Anonymous'
  return user && user.role === 'viewer' ? `${name} (viewing)` : name
}

function selectionMarks (doc, from, to, tint) {
  const mark = Decoration.mark({ attributes: { style: `background-color: ${tint}` }, class: 'cm-ySelection' })
  if (from === to) return []
  const first = doc.lineAt(from)
  const last = doc.lineAt(to)
  if (first.number === last.number) return [mark.range(from, to)]
  const ranges = [mark.range(from, first.to)]
  for (let number = first.number + 1; number < last.number; number++) {
    const line = doc.line(number)
    ranges.push(Decoration.line({ attributes: { style: `background-color: ${tint}`, class: 'cm-yLineSelection' } }).range(line.from))
  }
  ranges.push(mark.range(last.from, to))
  return ranges.filter((range) => range.from < range.to || range.value.spec.attributes?.class === 'cm-yLineSelection')
}

export function remoteCursors (ytext, awareness) {
  return ViewPlugin.fromClass(class {
    constructor (view) {
      this.decorations = RangeSet.empty
      this.listener = ({ added, updated, removed }) => {
        if ([...added, ...updated, ...removed].some((id) => id !== awareness.clientID)) {
          queueMicrotask(() => view.dispatch({ annotations: refresh.of(true) }))
        }
      }
      awareness.on('change', this.listener)
    }

    destroy () { awareness.off('change', this.listener) }

    update (update) {
      this.publish(update)
      this.decorations = this.draw(update.view.state.doc)
    }

    /** This page's own cursor, as relative positions, while the editor has focus. */
    publish (update) {
      const local = awareness.getLocalState()
      if (local === null) return
      const hasFocus = update.view.hasFocus && update.view.dom.ownerDocument.hasFocus()
      if (!hasFocus) return
      const { anchor, head } = update.state.selection.main
      const next = { anchor: Y.createRelativePositionFromTypeIndex(ytext, anchor), head: Y.createRelativePositionFromTypeIndex(ytext, head) }
      const current = local.cursor
      if (current && Y.compareRelativePositions(Y.createRelativePositionFromJSON(current.anchor), next.anchor) &&
          Y.compareRelativePositions(Y.createRelativePositionFromJSON(current.head), next.head)) return
      awareness.setLocalStateField('cursor', next)
    }

    draw (doc) {
      const ranges = []
      awareness.getStates().forEach((state, clientId) => {
        if (clientId === awareness.clientID || !state || !state.cursor || !state.cursor.anchor || !state.cursor.head) return
        let anchor, head
        try {
          anchor = Y.createAbsolutePositionFromRelativePosition(state.cursor.anchor, ytext.doc)
          head = Y.createAbsolutePositionFromRelativePosition(state.cursor.head, ytext.doc)
        } catch {
          return // a malformed position from another client draws nothing
        }
        if (!anchor || !head || anchor.type !== ytext || head.type !== ytext) return
        const user = state.user && typeof state.user === 'object' ? state.user : {}
        const color = safeColor(user.color, FALLBACK)
        const tint = safeColor(user.colorLight, color.slice(0, 7) + '33')
        const from = Math.min(anchor.index, head.index, doc.length)
        const to = Math.min(Math.max(anchor.index, head.index), doc.length)
        ranges.push(...selectionMarks(doc, from, to, tint))
        const at = Math.min(head.index, doc.length)
        ranges.push(Decoration.widget({
          side: head.index - anchor.index > 0 ? -1 : 1, // the local cursor is drawn outside the remote selection
          widget: new CaretWidget(color, caretLabel(user), user.role === 'viewer')
        }).range(at))
      })
      return Decoration.set(ranges, true)
    }
  }, { decorations: (plugin) => plugin.decorations })
}

export const remoteCursorTheme = EditorView.baseTheme({
  '.cm-yLineSelection': { padding: 0, margin: '0px 2px 0px 4px' },
  '.cm-ySelectionCaret': {
    position: 'relative', borderLeft: '1px solid black', borderRight: '1px solid black',
    marginLeft: '-1px', marginRight: '-1px', boxSizing: 'border-box', display: 'inline'
  },
  '.cm-ySelectionCaret.is-viewer': { borderStyle: 'dashed', opacity: '0.8' },
  '.cm-ySelectionCaretDot': {
    borderRadius: '50%', position: 'absolute', width: '.4em', height: '.4em', top: '-.2em', left: '-.2em',
    backgroundColor: 'inherit', boxSizing: 'border-box'
  },
  '.cm-ySelectionInfo': {
    position: 'absolute', left: '-1px', lineHeight: 'normal', userSelect: 'none', color: 'white',
    zIndex: 101, backgroundColor: 'inherit', whiteSpace: 'nowrap'
  }
})
