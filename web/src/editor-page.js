// The document screen: joins the document's room, binds the editor, and wires the top bar
// (who is here, connection, share, shortcuts) and the redraft palette to the server.
import { EditorView } from '@codemirror/view'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { DocumentApi } from './api.js'
import { trackConnection } from './connection.js'
import { createEditor } from './editor-view.js'
import { fillHelp } from './help.js'
import { MAX_NAME_LENGTH, awarenessUser, localUser, rename } from './identity.js'
import { withToken } from './links.js'
import { createPalette } from './palette.js'
import { anchorPopover, openPopover } from './popover.js'
import { avatar, showPresence } from './presence.js'
import { rememberDocument } from './recent.js'
import { redraftMarks } from './redraft-marks.js'
import { RedraftBoard } from './redrafts.js'
import { selectionButton } from './selection-button.js'
import { setUpShare } from './share.js'
import { installShortcuts, keyLabel } from './shortcuts.js'
import { createToasts } from './toasts.js'

const $ = (id) => document.getElementById(id)

const READ_ONLY_NOTE = 'You opened a read-only link: you see every change as it happens, but cannot change the text ' +
  'or ask for redrafts. Ask whoever shared it for an edit link.'

/** Shows why typing does nothing, with a nudge each time someone tries. */
function readOnlyGuard (isReadOnly, notice) {
  const nudge = () => {
    if (!isReadOnly()) return false
    notice.classList.remove('is-nudged')
    void notice.offsetWidth // restart the animation
    notice.classList.add('is-nudged')
    return false
  }
  return EditorView.domEventHandlers({
    keydown: (event) => (event.key.length === 1 || event.key === 'Enter' || event.key === 'Backspace' || event.key === 'Delete') &&
      !event.ctrlKey && !event.metaKey && nudge(),
    paste: nudge,
    drop: nudge
  })
}

function showYou (button, user) {
  button.replaceChildren(avatar(user), Object.assign(document.createElement('span'), { className: 'you-name', textContent: user.name }))
  button.title = `You appear to the others as ${user.name}. Change your name (${keyLabel('Mod-Alt-KeyN')})`
  button.setAttribute('aria-label', `You: ${user.name}. Change your name`)
}

/** The name button and its panel: a new name goes to the others at once and is remembered. */
function setUpName ({ awareness, view, getUser, setUser }) {
  const button = $('you-button')
  const input = $('your-name')
  anchorPopover($('name-panel'), button)
  showYou(button, getUser())
  input.maxLength = MAX_NAME_LENGTH
  $('name-panel').addEventListener('toggle', (event) => { if (event.newState === 'open') input.value = getUser().name })
  $('name-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const user = rename(input.value)
    setUser(user)
    awareness.setLocalStateField('user', awarenessUser(user))
    showYou(button, user)
    $('name-panel').hidePopover()
    view.focus()
  })
}

/** What the page-wide shortcuts do (shortcuts.js has the keys). */
function shortcutActions ({ board, view, toasts, openPalette }) {
  const suggestion = () => {
    const found = board.suggestionNear(view.state.selection.main.head)
    if (!found) toasts.show('There is no suggestion waiting.', { key: 'suggestion' })
    return found
  }
  const onSuggestion = (act) => () => { const found = suggestion(); if (found) act(found.id) }
  return {
    palette: openPalette,
    'undo-redraft': () => board.undo(),
    accept: onSuggestion((id) => board.accept(id)),
    reject: onSuggestion((id) => board.reject(id)),
    retry: onSuggestion((id) => board.retry(id)),
    stop: () => {
      const running = board.runningOfMine()
      if (running) board.cancel(running.id)
      else toasts.show('None of your redrafts is running.', { key: 'stop' })
    },
    share: () => openPopover($('share-panel')),
    name: () => openPopover($('name-panel')),
    help: () => openPopover($('help-panel'))
  }
}

/** Why redrafts cannot run on this server, or null. */
function engineOffReason (session) {
  const engine = session.engine || {}
  if (engine.mode !== 'off' && engine.status !== 'off') return null
  return 'AI redrafts are off on this server (it was started with --engine off).'
}

export function showEditor (name, token) {
  const screen = $('editor')
  screen.hidden = false
  $('doc-title').textContent = name
  $('home').href = withToken('/', token)
  document.title = `${name} · Redraft`
  rememberDocument(name, token)

  const doc = new Y.Doc()
  const ytext = doc.getText('content')
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws'
  const provider = new WebsocketProvider(`${scheme}://${window.location.host}/ws`, name, doc, { params: token ? { token } : {} })
  const awareness = provider.awareness
  const api = new DocumentApi(name, token)
  const toasts = createToasts($('toasts'))
  let user = localUser()
  awareness.setLocalStateField('user', awarenessUser(user))
  trackConnection(provider, doc, $('status'))

  let role = null // until the server says; the editor stays read-only meanwhile so nothing is typed in vain
  let engineOff = null
  let palette = null
  const openPalette = () => {
    if (role === 'read') toasts.show(READ_ONLY_NOTE, { key: 'read-only' })
    else palette.open()
  }
  const editor = createEditor({
    parent: $('content'),
    ytext,
    awareness,
    extensions: [redraftMarks, selectionButton(openPalette), readOnlyGuard(() => role === 'read', $('notice'))]
  })
  const view = editor.view
  editor.setReadOnly(true)
  const board = new RedraftBoard({ view, ytext, awareness, api, toasts, requester: () => ({ name: user.name, color: user.color }) })
  palette = createPalette({
    dialog: $('palette'),
    view,
    board,
    getBlocker: () => role === 'read' ? 'This is a read-only link: redrafts change the text, so they need an edit link.' : engineOff
  })

  let isAiBusy = false
  const renderPresence = () => showPresence(awareness, $('presence'), { isAiBusy })
  board.onActivity = (active) => {
    if (isAiBusy !== active.length > 0) { isAiBusy = active.length > 0; renderPresence() }
  }
  awareness.on('change', renderPresence)
  renderPresence()

  const share = setUpShare({ panel: $('share-panel'), api, doc: name })
  anchorPopover($('share-panel'), $('share-button'))
  anchorPopover($('help-panel'), $('help-button'))
  fillHelp($('help-panel'))
  setUpName({ awareness, view, getUser: () => user, setUser: (renamed) => { user = renamed } })
  $('redraft-button').addEventListener('click', openPalette)
  $('redraft-shortcut').textContent = keyLabel('Mod-KeyK')

  api.session().then((session) => {
    role = session.role
    engineOff = engineOffReason(session)
    share.setSession(session)
    $('redraft-button').classList.toggle('is-off', Boolean(engineOff))
    if (engineOff) $('redraft-button').title = engineOff
  }, (error) => {
    // A refused token also closes the websocket with its reason; anything else, the websocket decides.
    role = error.status === 401 ? 'read' : 'edit'
    if (error.status === 401) toasts.show(error.message, { kind: 'error', timeoutMs: 0 })
  }).then(() => {
    const isReadOnly = role === 'read'
    editor.setReadOnly(isReadOnly)
    board.canEdit = !isReadOnly
    board.schedule()
    screen.dataset.role = role
    $('readonly-badge').hidden = !isReadOnly
    $('notice').hidden = !isReadOnly
    $('notice').textContent = READ_ONLY_NOTE
    $('redraft-button').hidden = isReadOnly
  })

  installShortcuts(shortcutActions({ board, view, toasts, openPalette }))
  view.focus()

  // For tests and the console: the document, its editor, and Yjs positions as the API takes them.
  window.redraft = {
    doc, text: ytext, provider, view, board,
    relativePosition: (index) => board.relativePosition(index),
    absolutePosition: (encoded) => board.absolutePosition(encoded)
  }
}
