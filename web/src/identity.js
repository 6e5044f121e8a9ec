// Who this browser is to the others: a guest name and colour, kept across visits.

const STORAGE_KEY = 'redraft.user'
const COLORS = ['#d1495b', '#edae49', '#00798c', '#30638e', '#6a4c93', '#2a9d8f', '#e76f51', '#8ab17d']

function randomUser () {
  const [number, colorIndex] = crypto.getRandomValues(new Uint16Array(2))
  return { name: `Guest ${1000 + (number % 9000)}`, color: COLORS[colorIndex % COLORS.length] }
}

export function localUser () {
  try {
    const stored = JSON.parse(window.localStorage.getItem(STORAGE_KEY))
    if (stored && typeof stored.name === 'string' && typeof stored.color === 'string') return stored
  } catch {} // unreadable or blocked storage: a fresh guest for this visit
  const user = randomUser()
  try { window.localStorage.setItem(STORAGE_KEY, JSON.stringify(user)) } catch {}
  return user
}
