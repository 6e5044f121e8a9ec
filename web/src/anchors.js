// A passage's ends as the API takes them: Yjs relative positions, base64-encoded, so they follow the
// text through everyone's edits; and back to offsets in this replica's text.
import * as Y from 'yjs'

export function toBase64 (bytes) {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary)
}

export function fromBase64 (text) {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  return Uint8Array.from(binary, (char) => char.charCodeAt(0))
}

/** The anchor of offset `index` in `ytext`. */
export function relativePosition (ytext, index) {
  return toBase64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(ytext, index)))
}

/** Where an anchor is in `ytext` now, at most `length` (the editor's document length); null when unknown. */
export function absolutePosition (ytext, encoded, length) {
  try {
    const position = Y.createAbsolutePositionFromRelativePosition(Y.decodeRelativePosition(fromBase64(encoded)), ytext.doc)
    return position && position.type === ytext ? Math.min(position.index, length) : null
  } catch {
    return null // not decodable, or its item has not reached this replica yet
  }
}
