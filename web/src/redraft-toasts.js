// What the page says about this page's own redrafts, in toasts: each function returns the arguments of
// toasts.show ([message, options]), so the wording lives here and the board only decides when.
import { keyLabel } from './shortcuts.js'

export const NOTHING_TO_UNDO = 'There is no AI redraft of yours to undo.'
export const ONLY_REQUESTER_RETRIES = 'Only the one who asked for this suggestion can retry it; accept or reject it instead.'

/** The POST that asks for a redraft failed. */
export function notStarted (error) {
  return [`The redraft was not started: ${error.advice || error.message}`, { kind: 'error', key: 'request' }]
}

/** Accept, reject, stop, undo or redo (`label` says which, as "Could not …" goes on) failed. */
export function couldNot (label, id, error) {
  // A 409 carries the server's precise reason (who changed what since); say it as it is.
  const reason = error.status === 409 && error.message ? error.message : (error.advice || error.message)
  return [`Could not ${label}: ${reason}`, { kind: 'error', key: `act-${id}` }]
}

function whoRejected (rejectedBy) {
  return rejectedBy && typeof rejectedBy.name === 'string' && rejectedBy.name ? rejectedBy.name : 'Someone in the document'
}

/**
 * The toast for a redraft of ours that moved from `previous` to `status`, or null. `detail` is the
 * server's error text, `rejectedBy` who rejected it, `isOwnRejection` whether this page did (then it says
 * nothing); `undo` and `redo` are what the toast's buttons run.
 */
export function statusToast (status, { previous = null, detail = null, rejectedBy = null, isOwnRejection = false, undo, redo }) {
  const why = detail ? ` (${detail})` : ''
  if (status === 'done') {
    return [previous === 'undone' ? 'Redraft put back in.' : 'Redraft applied.', {
      kind: 'success', key: 'redraft', timeoutMs: 0, actions: [{ label: 'Undo', run: undo, title: `Undo it (${keyLabel('Mod-KeyZ')} right away)` }]
    }]
  }
  if (status === 'suggested') return ['Suggestion ready: accept or reject it under the passage.', { key: 'redraft' }]
  if (status === 'conflict' && previous === 'suggested') {
    return ['Your suggestion no longer fits: the words it rewrites were changed since. Reject it, or ask again.', { kind: 'error', key: 'redraft' }]
  }
  if (status === 'conflict') {
    return [`The passage changed too much while the AI was writing${why || ' (someone deleted or rewrote it)'}, ` +
      'so the redraft was not put in. Nothing was changed: select the passage and try again.', { kind: 'error', key: 'redraft' }]
  }
  if (status === 'failed') return [`The redraft failed${why}. Nothing was changed.`, { kind: 'error', key: 'redraft' }]
  if (status === 'undone') {
    return ['The redraft was undone: the passage is back as it was.', {
      key: 'redraft', actions: [{ label: 'Redo', run: redo, title: `Put it back (${keyLabel('Mod-Shift-KeyZ')} right away)` }]
    }]
  }
  if (status === 'rejected' && !isOwnRejection) {
    return [`${whoRejected(rejectedBy)} rejected your suggestion; the passage stays as it is.`, { key: 'redraft' }]
  }
  if (status === 'expired') return ['Your suggestion expired before anyone accepted it; the passage stays as it is.', { key: 'redraft' }]
  return null
}
