// The redrafts the server's AI peer publishes in its awareness state: every collaborator draws the
// same live canvases and suggestions from it, whoever asked. Only the client id the session reserves
// for the AI peer is listened to (trust.js); anything else claiming to be a redraft is ignored.
import { isAiPeer } from './trust.js'

/** The AI peer's redraft entries by id, in the order it lists them. */
export function aiRedrafts (states, session) {
  const entries = new Map()
  for (const [clientId, state] of states) {
    if (!isAiPeer(clientId, state, session) || !Array.isArray(state.redrafts)) continue
    for (const redraft of state.redrafts) {
      if (redraft && typeof redraft === 'object' && typeof redraft.id === 'string' && redraft.id) entries.set(redraft.id, redraft)
    }
  }
  return entries
}

/** The passage [from, to) an entry's anchors span in the text now, or null where either end is unknown. */
export function passageOf (redraft, locate) {
  const anchors = redraft.anchors || {}
  const start = locate(anchors.start)
  const end = locate(anchors.end)
  return start === null || end === null ? null : [Math.min(start, end), Math.max(start, end)]
}

/** The entries that can be placed in the text: [{redraft, from, to}], sorted by where they start. */
export function placeRedrafts (entries, locate) {
  const placed = []
  for (const redraft of entries.values()) {
    const passage = passageOf(redraft, locate)
    if (passage) placed.push({ redraft, from: passage[0], to: passage[1] })
  }
  return placed.sort((a, b) => a.from - b.from || a.to - b.to)
}
