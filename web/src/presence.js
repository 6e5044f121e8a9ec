// Who else is in the document: a coloured initial for each person, names spelled out while
// there are few, viewers (read-only links, as the server stamps them) marked as such, and the AI
// peer apart from the people, marked as the AI and busy while it writes.
import { initials } from './identity.js'
import { isAiPeer, safeColor } from './trust.js'

const MAX_NAMES_SHOWN = 2 // chips with names; beyond this the bar would crowd: initials only, names in the tooltip

export function avatar (user, isAi = false) {
  const node = document.createElement('span')
  node.className = 'avatar'
  node.setAttribute('aria-hidden', 'true')
  node.style.background = safeColor(user.color, '#59636e')
  node.textContent = isAi ? '✦' : initials(user.name || '?')
  return node
}

function chip (user, { isAi = false, isBusy = false } = {}) {
  const isViewer = !isAi && user.role === 'viewer'
  const item = document.createElement('li')
  item.className = 'person' + (isAi ? ' is-ai' : '') + (isBusy ? ' is-busy' : '') + (isViewer ? ' is-viewer' : '')
  const name = document.createElement('span')
  name.className = 'person-name'
  name.textContent = isAi && isBusy ? `${user.name} · writing` : isViewer ? `${user.name} · viewing` : user.name
  item.title = isAi ? `${user.name}: the AI writes redrafts here${isBusy ? ' (writing now)' : ''}`
    : isViewer ? `${user.name} (viewing through a read-only link)` : user.name
  item.setAttribute('aria-label', item.title)
  item.append(avatar(user, isAi), name)
  return item
}

export function showPresence (awareness, list, { isAiBusy = false, session = null } = {}) {
  const people = []
  const ai = []
  awareness.getStates().forEach((state, clientId) => {
    // A client that never said who it is (a stock Yjs client, whose state the server stamps with a role only) is not listed.
    if (!state || !state.user || typeof state.user !== 'object' || typeof state.user.name !== 'string') return
    if (isAiPeer(clientId, state, session)) ai.push(state.user)
    else people.push({ user: state.user, isSelf: clientId === awareness.clientID })
  })
  const others = people.filter(({ isSelf }) => !isSelf) // you are the button beside the list
  list.classList.toggle('is-crowded', others.length + Math.min(ai.length, 1) > MAX_NAMES_SHOWN)
  const chips = others.map(({ user }) => chip(user))
  // One AI, whichever server replica speaks for it; first, so a crowded bar never clips it.
  if (ai.length > 0) chips.unshift(chip(ai[0], { isAi: true, isBusy: isAiBusy }))
  const count = document.createElement('li')
  count.className = 'count'
  count.textContent = people.length === 1 ? '1 person here' : `${people.length} people here`
  list.replaceChildren(...chips, count)
  list.title = [...people.map(({ user }) => user.name), ...ai.slice(0, 1).map((user) => user.name)].join(', ')
}
