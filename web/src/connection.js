// The connection line: connected, offline (edits kept locally, with how many are waiting),
// resyncing after a reconnect, or stopped by the server with its reason.

function plural (count, word) { return `${count} ${word}${count === 1 ? '' : 's'}` }

/** [data-state, text] for the status line. */
export function describeConnection ({ phase, hasSynced, unsent, close }) {
  if (phase === 'stopped') {
    const reason = close ? ` — ${close.reason || 'closed'} (${close.code})` : ''
    return ['offline', `Disconnected${reason}`]
  }
  if (phase === 'synced') return ['connected', 'Connected']
  if (phase === 'connected') return ['resyncing', hasSynced ? 'Resyncing…' : 'Loading…']
  if (!hasSynced) return ['connecting', 'Connecting…']
  const waiting = unsent > 0 ? `, ${plural(unsent, 'change')} not sent yet` : ''
  return ['offline', `Offline — editing locally${waiting}`]
}

export function trackConnection (provider, doc, statusLine) {
  const state = { phase: 'connecting', hasSynced: false, unsent: 0, close: null }
  const render = () => {
    const [name, label] = describeConnection(state)
    statusLine.dataset.state = name
    statusLine.textContent = label
    statusLine.title = name === 'offline' && state.phase !== 'stopped'
      ? 'Your edits are kept in this tab and merged when the connection returns.'
      : ''
  }
  provider.on('status', ({ status }) => { // 'connected' is the socket; the document is in step only after 'sync'
    if (state.phase !== 'stopped') state.phase = status
    render()
  })
  provider.on('sync', (isSynced) => {
    if (isSynced) Object.assign(state, { phase: 'synced', hasSynced: true, unsent: 0, close: null })
    render()
  })
  provider.on('connection-close', (event) => {
    if (event && event.code >= 4000 && event.code < 5000) state.close = { code: event.code, reason: event.reason }
  })
  provider.on('closed', () => { state.phase = 'stopped'; render() }) // y-websocket gives up on 44xx codes
  doc.on('update', (update, origin) => {
    // A local edit while out of step: it reaches the others with the next sync.
    if (origin !== provider && state.phase !== 'synced' && state.phase !== 'connected') { state.unsent++; render() }
  })
  render()
  return state
}
