// Who this browser is to the others: a name and colour, kept across visits. Both are the user's
// to change; a colour nobody chose gives way when someone who was here first already wears it.

import { safeColor } from './trust.js'

const STORAGE_KEY = 'redraft.user'
// Every colour carries white text at >= 5:1 (WCAG AA), so names on cursors and avatars stay readable, and
// each is a hue of its own (crimson, orange, teal, blue, ochre, green, purple, magenta), apart from the AI's violet.
export const COLORS = ['#b4233c', '#a84300', '#00707f', '#2e5c8a', '#7d5a00', '#4d7a2e', '#6a4c93', '#a3247a']
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
    if (stored && typeof stored.name === 'string' && typeof stored.color === 'string') {
      if ((stored.colorChosen && safeColor(stored.color, null)) || COLORS.includes(stored.color)) return stored
      const recoloured = { ...stored, color: randomUser().color } // a colour of an older palette, too light for white text
      save(recoloured)
      return recoloured
    }
  } catch {} // unreadable or blocked storage: a fresh guest for this visit
  const user = randomUser()
  save(user)
  return user
}

/** Renames the local user (and sets a chosen colour); an empty name keeps the old one. */
export function rename (name, color = null) {
  const user = localUser()
  const trimmed = name.trim().replace(/\s+/g, ' ').slice(0, MAX_NAME_LENGTH)
  const chosen = COLORS.includes(color) ? { color, colorChosen: true } : {}
  save({ ...user, ...(trimmed ? { name: trimmed } : {}), ...chosen })
  return localUser()
}

/** The first colour of COLORS nobody in `taken` wears, else the least worn. */
export function freeColor (taken) {
  const counts = new Map(COLORS.map((color) => [color, 0]))
  for (const color of taken) if (counts.has(color)) counts.set(color, counts.get(color) + 1)
  return [...counts].sort((a, b) => a[1] - b[1])[0][0]
}

/**
 * `user`, or a copy in a free colour when someone with a smaller client id (so, of two people
 * joining at once, exactly one gives way) wears the same one and the user never chose theirs.
 */
export function keepColorApart (user, awareness) {
  if (user.colorChosen) return user
  const taken = []
  let clash = false
  awareness.getStates().forEach((state, clientId) => {
    if (clientId === awareness.clientID || !state || !state.user || typeof state.user.color !== 'string') return
    const color = state.user.color.slice(0, 7).toLowerCase()
    taken.push(color)
    if (color === user.color.toLowerCase() && clientId < awareness.clientID) clash = true
  })
  if (!clash) return user
  const moved = { ...user, color: freeColor(taken) }
  if (moved.color === user.color) return user
  save(moved)
  return moved
}

export const initials = (name) => (name.trim().match(/\S+/g) || ['?']).slice(0, 2).map((word) => [...word][0]).join('').toUpperCase()
