// Who this browser is to the others: a name and colour, kept across visits. The name is the
// user's to change; the colour stays, so the others keep recognising the cursor.

const STORAGE_KEY = 'redraft.user'
const COLORS = ['#d1495b', '#c77d00', '#00798c', '#30638e', '#6a4c93', '#2a9d8f', '#e76f51', '#5d8a3a']
export const MAX_NAME_LENGTH = 40

function randomUser () {
  const [number, colorIndex] = crypto.getRandomValues(new Uint16Array(2))
  return { name: `Guest ${1000 + (number % 9000)}`, color: COLORS[colorIndex % COLORS.length] }
}

/** The awareness `user` field y-codemirror.next draws: a light tint of the colour for selections. */
export function awarenessUser ({ name, color }) {
  return { name, color, colorLight: color + '33' }
}

function save (user) {
  try { window.localStorage.setItem(STORAGE_KEY, JSON.stringify(user)) } catch {} // blocked storage: this visit only
}

export function localUser () {
  try {
    const stored = JSON.parse(window.localStorage.getItem(STORAGE_KEY))
    if (stored && typeof stored.name === 'string' && typeof stored.color === 'string') return stored
  } catch {} // unreadable or blocked storage: a fresh guest for this visit
  const user = randomUser()
  save(user)
  return user
}

/** Renames the local user; an empty name keeps the old one. */
export function rename (name) {
  const user = localUser()
  const trimmed = name.trim().replace(/\s+/g, ' ').slice(0, MAX_NAME_LENGTH)
  if (trimmed) save({ ...user, name: trimmed })
  return localUser()
}

export const initials = (name) => (name.trim().match(/\S+/g) || ['?']).slice(0, 2).map((word) => [...word][0]).join('').toUpperCase()
