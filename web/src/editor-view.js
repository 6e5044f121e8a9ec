// The CodeMirror editor bound to the shared Y.Text: Markdown, wrapped lines, remote cursors with
// names, undo of one's own edits only, and a switch between editing and reading.
import { defaultKeymap } from '@codemirror/commands'
import { markdown } from '@codemirror/lang-markdown'
import { HighlightStyle, syntaxHighlighting } from '@codemirror/language'
import { Compartment, EditorState } from '@codemirror/state'
import { EditorView, drawSelection, keymap, placeholder } from '@codemirror/view'
import { tags } from '@lezer/highlight'
import * as Y from 'yjs'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import { remoteCursorTheme, remoteCursors } from './remote-cursors.js'

// Markdown as a writer sees it: the marks are quiet, the structure shows in the type itself.
const proseHighlight = HighlightStyle.define([
  { tag: tags.heading1, fontSize: '1.6em', fontWeight: '700' },
  { tag: tags.heading2, fontSize: '1.3em', fontWeight: '700' },
  { tag: tags.heading3, fontSize: '1.1em', fontWeight: '700' },
  { tag: [tags.heading4, tags.heading5, tags.heading6], fontWeight: '700' },
  { tag: tags.strong, fontWeight: '700' },
  { tag: tags.emphasis, fontStyle: 'italic' },
  { tag: tags.strikethrough, textDecoration: 'line-through' },
  { tag: [tags.link, tags.url], color: 'var(--accent)' },
  { tag: tags.monospace, fontFamily: 'var(--mono)', fontSize: '0.92em' },
  { tag: tags.quote, color: 'var(--muted)', fontStyle: 'italic' },
  { tag: [tags.processingInstruction, tags.meta, tags.contentSeparator], color: 'var(--faint)' },
  { tag: tags.list, color: 'var(--muted)' }
])

const theme = EditorView.theme({
  '&': { fontSize: '1.0625rem', backgroundColor: 'transparent' },
  '&.cm-focused': { outline: 'none' },
  '.cm-scroller': { fontFamily: 'inherit', lineHeight: '1.7', overflow: 'visible' },
  '.cm-content': { padding: '0', caretColor: 'var(--ink)' },
  '.cm-line': { padding: '0' },
  '.cm-placeholder': { color: 'var(--muted)' }, // --faint is 3:1 on paper; a placeholder is read too
  '.cm-cursor, .cm-dropCursor': { borderLeftColor: 'var(--ink)' },
  // The page's own colours, so a selection reads in the dark scheme too (CodeMirror's default is for light).
  '.cm-selectionBackground, &.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground': { background: 'var(--selection)' },
  // Remote names stay readable without hovering: they are how you tell who is where.
  '.cm-ySelectionInfo': {
    opacity: '1', top: '-1.35em', fontFamily: 'inherit', fontSize: '0.7rem', fontWeight: '600',
    padding: '0.05em 0.35em', borderRadius: '3px 3px 3px 0'
  },
  '.cm-ySelectionCaret': { borderLeftWidth: '2px' }
})

export function createEditor ({ parent, ytext, awareness, extensions = [] }) {
  const editable = new Compartment()
  const undoManager = new Y.UndoManager(ytext)
  const readOnlyState = (isReadOnly) => [EditorState.readOnly.of(isReadOnly), EditorView.editable.of(true)]
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        keymap.of([...yUndoManagerKeymap, ...defaultKeymap]),
        drawSelection(),
        EditorView.lineWrapping,
        markdown(),
        syntaxHighlighting(proseHighlight),
        placeholder('Start writing… select a passage and press Ctrl+K to have the AI redraft it.'),
        EditorView.contentAttributes.of({ 'aria-label': 'Document text', spellcheck: 'true', autocapitalize: 'sentences' }),
        theme,
        editable.of(readOnlyState(false)),
        // Sync and undo from y-codemirror; the others' cursors from remote-cursors.js, which passes every colour
        // through trust.js's safeColor before it reaches a style (fresh names, strict colours, viewers).
        yCollab(ytext, null, { undoManager }),
        remoteCursorTheme,
        remoteCursors(ytext, awareness),
        ...extensions
      ]
    })
  })
  return {
    view,
    undoManager,
    setReadOnly (isReadOnly) {
      view.dispatch({ effects: editable.reconfigure(readOnlyState(isReadOnly)) })
      view.contentDOM.setAttribute('aria-readonly', String(isReadOnly))
    }
  }
}
