// What the editor trusts in other clients' awareness states: only the server's AI peer (an id no stock
// Yjs client can have) may show previews and suggestions, and only strict colours reach a `style`.

const COLOR = /^#(?:[0-9a-f]{6}|[0-9a-f]{8})$/i

/** True only for the server's AI peer: an id at or above the one the session announces, with a state. */
export function isAiPeer (clientId, state, session) {
  const min = session && Number(session.ai_client_id_min)
  return Number.isFinite(min) && min > 0 && Number(clientId) >= min && state !== null && typeof state === 'object'
}

/** `value` when it is a strict #rrggbb or #rrggbbaa colour, else `fallback`. */
export function safeColor (value, fallback) {
  return typeof value === 'string' && COLOR.test(value) ? value : fallback
}
