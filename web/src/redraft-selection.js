// A selection that spans exactly a redrafted passage keeps spanning it when the redraft lands or is
// undone: mapped as CodeMirror maps ranges (not growing at the ends), a character-level diff would
// leave it on an arbitrary piece of the new text. Carets map as usual, so whoever types keeps typing.
import { EditorSelection, EditorState, Transaction } from '@codemirror/state'
import { shownRedrafts } from './redraft-field.js'

export const redraftSelection = EditorState.transactionFilter.of((transaction) => {
  if (!transaction.docChanged || transaction.annotation(Transaction.userEvent) || transaction.selection) return transaction
  const { main } = transaction.startState.selection
  if (main.empty) return transaction
  let spans = false
  transaction.startState.field(shownRedrafts).marks.between(main.from, main.to, (from, to, mark) => {
    if (from === main.from && to === main.to && mark.spec.class) spans = true
  })
  if (!spans) return transaction
  const from = transaction.changes.mapPos(main.from, -1)
  const to = transaction.changes.mapPos(main.to, 1)
  const range = main.anchor <= main.head ? EditorSelection.range(from, to) : EditorSelection.range(to, from)
  return [transaction, { selection: EditorSelection.create([range]), sequential: true }]
})
