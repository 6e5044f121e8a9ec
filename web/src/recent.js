// The documents this browser opened lately, newest first, each with the token it was opened with
// (a link for one document carries a token for that document only).

const STORAGE_KEY = 'redraft.recent'
export const MAX_RECENT = 12

function read () {
  try {
    const entries = JSON.parse(window.localStorage.getItem(STORAGE_KEY))
    if (Array.isArray(entries)) return entries.filter((entry) => entry && typeof entry.name === 'string')
  } catch {}
  return []
}

function write (entries) {
  try { window.localStorage.setItem(STORAGE_KEY, JSON.stringify(entries.slice(0, MAX_RECENT))) } catch {}
}

export const recentDocuments = read

export function rememberDocument (name, token) {
  const previous = read().find((entry) => entry.name === name)
  const entry = { name, token: token || (previous && previous.token) || null, openedAt: Date.now() }
  write([entry, ...read().filter((other) => other.name !== name)])
}

export function forgetDocument (name) {
  write(read().filter((entry) => entry.name !== name))
}

/** "just now", "5 min ago", "yesterday", or a date: enough to tell entries apart. */
export function whenOpened (openedAt, now = Date.now()) {
  const minutes = Math.floor((now - openedAt) / 60000)
  if (minutes < 1) return 'just now'
  if (minutes < 60) return `${minutes} min ago`
  const hours = Math.floor(minutes / 60)
  if (hours < 24) return `${hours} h ago`
  if (hours < 48) return 'yesterday'
  return new Date(openedAt).toLocaleDateString()
}
