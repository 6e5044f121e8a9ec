// The redrafts the editor shows, as editor state: what the redraft board last placed in the text
// (entries with their passages), whether this user may act on suggestions, and the decorations drawn
// from them (block widgets must come from a state field). The board sets it with `showRedrafts`
// whenever the AI peer's state or the text moves it on; edits in between map it.
import { StateEffect, StateField } from '@codemirror/state'
import { EditorView } from '@codemirror/view'
import { buildMarks } from './redraft-marks.js'
import { SUGGESTION_SHOWN } from './redraft-status.js'

/** {placed: [{redraft, from, to, isMine}], canEdit}: the redrafts to show from now on. */
export const showRedrafts = StateEffect.define()

const EMPTY = { placed: [], canEdit: true }

/** The shown value for `placed` in `doc`: a suggestion keeps the passage text it is diffed against. */
function shown ({ placed, canEdit }, doc) {
  const withText = placed.map((entry) => ({
    ...entry, current: SUGGESTION_SHOWN.has(entry.redraft.status) ? doc.sliceString(entry.from, entry.to) : null
  }))
  const value = { placed: withText, canEdit }
  return { ...value, marks: buildMarks(value, doc) }
}

export const shownRedrafts = StateField.define({
  create: (state) => shown(EMPTY, state.doc),
  update (value, transaction) {
    for (const effect of transaction.effects) if (effect.is(showRedrafts)) return shown(effect.value, transaction.state.doc)
    if (!transaction.docChanged) return value
    // Passages move as their Yjs anchors do (an insertion at either end goes before the anchored character);
    // a suggestion keeps the text it was drawn with until the board sets it anew.
    const { changes } = transaction
    const placed = value.placed.map((entry) => ({ ...entry, from: changes.mapPos(entry.from, 1), to: changes.mapPos(entry.to, 1) }))
    return { ...value, placed, marks: value.marks.map(changes) }
  },
  provide: (field) => EditorView.decorations.from(field, (value) => value.marks)
})

/**
 * Whether showing `next` ({placed, canEdit}, as for showRedrafts) in `doc` would draw what `current`
 * (the field's value) does: the same entries at the same places, and each suggestion against the same text.
 */
export function isShowing (current, next, doc) {
  if (current.canEdit !== next.canEdit || current.placed.length !== next.placed.length) return false
  return next.placed.every((entry, index) => {
    const drawn = current.placed[index]
    return drawn.redraft === entry.redraft && drawn.from === entry.from && drawn.to === entry.to && drawn.isMine === entry.isMine &&
      (!SUGGESTION_SHOWN.has(entry.redraft.status) || drawn.current === doc.sliceString(entry.from, entry.to))
  })
}
