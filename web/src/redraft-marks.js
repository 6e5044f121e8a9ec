// How redrafts show in the text. The passage stays in place and editable: a running redraft marks
// it and shows its live canvas in a block under the passage's last line; a suggestion marks it and
// shows the proposed text there (an inline diff for small edits, before and after for a rewrite)
// with its buttons; a finished one is highlighted for a moment. Nothing ever replaces the text, so a
// collaborator typing inside the passage keeps their caret and their words while the AI writes.
import { Decoration } from '@codemirror/view'
import { ACTIVE, SUGGESTION_SHOWN } from './redraft-status.js'
import { CanvasWidget, SuggestionWidget, requesterOf } from './redraft-widgets.js'

const APPLIED = Decoration.mark({ class: 'cm-redraft-applied' })

function passageMark (redraft) {
  const className = ACTIVE.has(redraft.status) ? 'cm-redraft-busy' : 'cm-redraft-pending'
  return Decoration.mark({ class: className, attributes: { style: `--who: ${requesterOf(redraft).color}`, 'data-redraft': String(redraft.id) } })
}

/** Whether a redraft in this status waits in place: marked, with its canvas or suggestion under it. */
export function isShownInPlace (redraft) {
  // A conflict waits for a person only as a suggestion; an applied redraft that conflicted is over (its message says so).
  return ACTIVE.has(redraft.status) || (SUGGESTION_SHOWN.has(redraft.status) && (redraft.status !== 'conflict' || redraft.mode === 'suggest'))
}

/**
 * The decorations for the redrafts shown: `placed` is [{redraft, from, to, current, isMine}] sorted by
 * `from`, `current` the passage's text the suggestion is diffed against. The passage gets a mark; its
 * canvas or suggestion a block under the passage's last line.
 */
export function buildMarks ({ placed, canEdit }, doc) {
  const ranges = []
  for (const { redraft, from, to, current, isMine } of placed) {
    if (isShownInPlace(redraft)) {
      if (from < to) ranges.push(passageMark(redraft).range(from, to))
      const widget = ACTIVE.has(redraft.status)
        ? new CanvasWidget(redraft, isMine)
        : new SuggestionWidget(redraft, current, { canEdit, isMine })
      ranges.push(Decoration.widget({ widget, block: true, side: 1 }).range(doc.lineAt(to).to))
    } else if (redraft.status === 'done' && from < to) {
      ranges.push(APPLIED.range(from, to))
    }
  }
  return Decoration.set(ranges, true)
}
