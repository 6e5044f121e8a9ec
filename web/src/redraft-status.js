// A redraft's statuses and the order they come in: which ones are still in the works, which a page
// may move its record of a redraft to, and which show in the text as a suggestion.

// Statuses only move forward, except that undo and redo move a finished redraft between done and undone.
export const RANK = { queued: 0, running: 1, suggested: 2, done: 3, conflict: 3, failed: 3, cancelled: 3, rejected: 3, expired: 3, undone: 4 }
export const ACTIVE = new Set(['queued', 'running'])
// Statuses whose widget shows the suggested text, diffed against the passage as it is now.
export const SUGGESTION_SHOWN = new Set(['suggested', 'expired', 'conflict'])

/** Whether a redraft's status may move from `from` to `to` in this page's record of it. */
export function movesOn (from, to) {
  if (!(to in RANK)) return false
  if (from === null || from === undefined) return true
  if ((from === 'done' && to === 'undone') || (from === 'undone' && to === 'done')) return true
  return RANK[to] > RANK[from]
}

/** Whether `status` is at least as far along as `settled` (a status name). */
export function hasReached (status, settled) {
  return RANK[status] >= RANK[settled]
}
