// The document screen: connects to the server's room, shows the connection and who is here,
// and binds the textarea to the shared text.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { localUser } from './identity.js'
import { withToken } from './links.js'
import { bindTextarea } from './textarea-binding.js'

const AI_PEER_NAME = 'Redraft AI' // the server's own awareness client (ARCHITECTURE.md), not a person

function describe (connection, close) {
  const reason = close ? ` — ${close.reason || 'closed'} (${close.code})` : ''
  if (connection === 'synced') return ['connected', 'Connected']
  if (connection === 'stopped') return ['offline', `Disconnected${reason}`]
  if (connection === 'disconnected') return ['offline', `Offline, retrying${reason}`]
  return ['connecting', 'Connecting…']
}

function showPresence (awareness, element) {
  const people = [...awareness.getStates().values()]
    .map((state) => state.user)
    .filter((user) => user && user.name !== AI_PEER_NAME)
  element.replaceChildren(...people.map((user) => {
    const dot = document.createElement('span')
    dot.className = 'dot'
    dot.title = user.name
    dot.style.background = user.color
    return dot
  }))
  const count = document.createElement('span')
  count.className = 'count'
  count.textContent = people.length === 1 ? '1 person here' : `${people.length} people here`
  element.append(count)
  element.title = people.map((user) => user.name).join(', ')
}

export function showEditor (name, token) {
  document.getElementById('editor').hidden = false
  document.getElementById('doc-title').textContent = name
  document.getElementById('home').href = withToken('/', token)
  document.title = `${name} · Redraft`
  const statusLine = document.getElementById('status')
  const presence = document.getElementById('presence')
  const textarea = document.getElementById('content')

  const doc = new Y.Doc()
  const text = doc.getText('content')
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws'
  const provider = new WebsocketProvider(`${scheme}://${window.location.host}/ws`, name, doc, {
    params: token ? { token } : {}
  })
  bindTextarea(text, textarea)

  let connection = 'connecting'
  let close = null // the server's last 4xxx close: its reason says what to do (e.g. a token expired)
  const render = () => {
    const [state, label] = describe(connection, close)
    statusLine.dataset.state = state
    statusLine.textContent = label
  }
  provider.on('status', ({ status }) => { connection = status; render() }) // 'connected' still awaits the sync
  provider.on('sync', (isSynced) => {
    if (isSynced) { connection = 'synced'; close = null }
    render()
  })
  provider.on('connection-close', (event) => {
    if (event && event.code >= 4000 && event.code < 5000) close = { code: event.code, reason: event.reason }
  })
  provider.on('closed', () => { connection = 'stopped'; render() }) // y-websocket gives up on 44xx codes

  provider.awareness.setLocalStateField('user', localUser())
  provider.awareness.on('change', () => showPresence(provider.awareness, presence))
  showPresence(provider.awareness, presence)
  render()
  textarea.focus()

  window.redraft = { doc, text, provider }
}
