// The document screen: joins the document's room, binds the editor, and wires the top bar
// (who is here, connection, versions, share, shortcuts) and the redraft palette to the server.
import { Prec, Transaction } from '@codemirror/state'
import { EditorView, keymap } from '@codemirror/view'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { DocumentApi } from './api.js'
import { trackConnection } from './connection.js'
import { createEditor } from './editor-view.js'
import { fillHelp } from './help.js'
import { setUpHistory } from './history.js'
import { COLORS, MAX_NAME_LENGTH, awarenessUser, keepColorApart, localUser, rename } from './identity.js'
import { withToken } from './links.js'
import { createPalette } from './palette.js'
import { anchorPopover, openPopover } from './popover.js'
import { avatar, showPresence } from './presence.js'
import { rememberDocument } from './recent.js'
import { redraftMarks, redraftSelection } from './redraft-marks.js'
import { RedraftBoard } from './redrafts.js'
import { selectionButton } from './selection-button.js'
import { setUpShare } from './share.js'
import { installShortcuts, keyLabel } from './shortcuts.js'
import { createToasts, toastMargin } from './toasts.js'
import { setUpVersions } from './versions.js'

const $ = (id) => document.getElementById(id)

const READ_ONLY_NOTE = 'You opened a read-only link: you see every change as it happens, but cannot change the text ' +
  'or ask for redrafts. Ask whoever shared it for an edit link.'
const NO_ACCESS_NOTE = 'This link does not give access to this document (4401): this server needs a link with a token, and ' +
  'this one has none, or a wrong or expired one. Ask whoever shares the document for a link, or open it from one you were sent.'
const CLOSE_UNAUTHORIZED = 4401

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
  const name = Object.assign(document.createElement('span'), { className: 'you-name', textContent: user.name })
  const hint = Object.assign(document.createElement('span'), { className: 'visually-hidden', textContent: ' (you): change your name or colour' })
  button.replaceChildren(avatar(user), name, hint)
  button.title = `You appear to the others as ${user.name}. Change your name or colour (${keyLabel('Chord-KeyN')})`
  button.removeAttribute('aria-label') // the visible name is the accessible name's start
}

/** The colour swatches of the name panel: radio buttons, so arrow keys move between them. */
function colorChoices (fieldset, current) {
  fieldset.querySelectorAll('label').forEach((label) => label.remove())
  for (const [index, color] of COLORS.entries()) {
    const label = document.createElement('label')
    label.className = 'swatch'
    label.style.setProperty('--swatch', color)
    const input = Object.assign(document.createElement('input'), { type: 'radio', name: 'color', value: color, checked: color === current })
    const text = Object.assign(document.createElement('span'), { className: 'visually-hidden', textContent: `Colour ${index + 1} (${color})` })
    label.append(input, text)
    fieldset.append(label)
  }
}

/**
 * The name button and its panel: a new name goes to the others at once and is remembered. A link whose
 * token signs a name (the session says which) fixes the name to it, the one history shows as verified;
 * the colour stays the user's.
 */
function setUpName ({ awareness, view, getUser, setUser }) {
  const button = $('you-button')
  const input = $('your-name')
  const colors = $('your-color')
  let signedName = null
  anchorPopover($('name-panel'), button)
  showYou(button, getUser())
  input.maxLength = MAX_NAME_LENGTH
  $('name-panel').addEventListener('toggle', (event) => {
    if (event.newState !== 'open') return
    input.value = getUser().name
    colorChoices(colors, getUser().color)
  })
  const publish = (user) => {
    const shown = signedName ? { ...user, name: signedName } : user
    setUser(shown)
    awareness.setLocalStateField('user', awarenessUser(shown))
    showYou(button, shown)
  }
  $('name-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const picked = colors.querySelector('input:checked')
    publish(rename(signedName ? '' : input.value, picked ? picked.value : null))
    $('name-panel').hidePopover()
    view.focus()
  })
  // Someone here already wears this colour and was here first: take a free one, unless it was chosen.
  awareness.on('change', () => {
    const user = keepColorApart(getUser(), awareness)
    if (user !== getUser()) publish(user)
  })
  return {
    /** The token's signed name, from the session: it replaces the typed one, and the field is read-only. */
    signed (name) {
      if (typeof name !== 'string' || !name) return
      signedName = name
      input.readOnly = true
      $('name-signed').hidden = false
      $('name-signed').textContent = `Your link names you ${name}: history shows it as verified. You can still pick your colour.`
      publish(getUser())
    }
  }
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
    versions: () => openPopover($('versions-panel')),
    history: () => openPopover($('history-panel')),
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

/** Ctrl+Z right after one's own redraft landed undoes it (and Ctrl+Shift+Z puts it back); typing ends that. */
function redraftUndoKeys (getBoard) {
  return [
    Prec.highest(keymap.of([
      { key: 'Mod-z', run: () => getBoard().reverseJustActed('applied') },
      { key: 'Mod-Shift-z', run: () => getBoard().reverseJustActed('undone') },
      { key: 'Mod-y', run: () => getBoard().reverseJustActed('undone') }
    ])),
    EditorView.updateListener.of((update) => {
      if (update.transactions.some((tr) => tr.docChanged && tr.annotation(Transaction.userEvent))) getBoard().localEdits++
      if (update.docChanged) getBoard().textChanged()
    })
  ]
}

/** Where the page says that this link gives no access: the notice, the status line, no editing. */
function showNoAccess (screen, editor) {
  screen.dataset.role = 'none'
  editor.setReadOnly(true)
  $('notice').hidden = false
  $('notice').textContent = NO_ACCESS_NOTE
  $('notice').classList.add('is-error')
  $('readonly-badge').hidden = true
  $('redraft-button').hidden = true
}

/** Editing, reading or no access, once the server said which: the editor, the banner and the buttons follow. */
function showRole ({ screen, editor, board, role }) {
  if (role === 'none') return showNoAccess(screen, editor)
  const isReadOnly = role === 'read'
  editor.setReadOnly(isReadOnly)
  board.canEdit = !isReadOnly
  board.schedule()
  screen.dataset.role = role
  $('readonly-badge').hidden = !isReadOnly
  $('notice').hidden = !isReadOnly
  $('notice').textContent = READ_ONLY_NOTE
  $('redraft-button').hidden = isReadOnly
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
  let board = null
  let session = null
  const openPalette = () => {
    if (role === 'none') toasts.show(NO_ACCESS_NOTE, { kind: 'error', key: 'read-only' })
    else if (role === 'read') toasts.show(READ_ONLY_NOTE, { key: 'read-only' })
    else {
      palette.open()
      refreshModel()
    }
  }
  // The page may have opened while the model loaded (or before a worker was seen): until the engine is ready,
  // the palette asks again, so it offers what the model turned out to declare.
  const refreshModel = () => {
    if (!session || (session.engine && ['ready', 'off'].includes(session.engine.status))) return
    api.session().then((answer) => {
      session.engine = answer.engine
      session.model = answer.model
      palette.refresh()
    }, () => {})
  }
  const editor = createEditor({
    parent: $('content'),
    ytext,
    awareness,
    extensions: [
      redraftMarks, redraftSelection, selectionButton(openPalette), readOnlyGuard(() => role === 'read', $('notice')),
      redraftUndoKeys(() => board),
      toastMargin($('toasts'))
    ]
  })
  const view = editor.view
  editor.setReadOnly(true)
  board = new RedraftBoard({ view, ytext, awareness, api, toasts, requester: () => ({ name: user.name, color: user.color }) })
  palette = createPalette({
    dialog: $('palette'),
    view,
    board,
    getBlocker: () => role === 'read' ? 'This is a read-only link: redrafts change the text, so they need an edit link.' : engineOff,
    getModel: () => session ? session.model : null
  })

  let isAiBusy = false
  const renderPresence = () => showPresence(awareness, $('presence'), { isAiBusy, session })
  board.onActivity = (active) => {
    if (isAiBusy !== active.length > 0) { isAiBusy = active.length > 0; renderPresence() }
  }
  awareness.on('change', renderPresence)
  renderPresence()

  const share = setUpShare({ panel: $('share-panel'), api, doc: name })
  const history = setUpHistory({ panel: $('history-panel'), api, board, canEdit: () => role === 'edit' })
  setUpVersions({ panel: $('versions-panel'), api, ytext, toasts, canEdit: () => role === 'edit', by: () => ({ name: user.name, color: user.color }), focusText: () => view.focus() })
  board.onHistory = () => history.changed()
  board.onLanded = () => editor.undoManager.stopCapturing()
  anchorPopover($('share-panel'), $('share-button'))
  anchorPopover($('help-panel'), $('help-button'))
  anchorPopover($('history-panel'), $('history-button'))
  anchorPopover($('versions-panel'), $('versions-button'))
  fillHelp($('help-panel'))
  const naming = setUpName({ awareness, view, getUser: () => user, setUser: (renamed) => { user = renamed } })
  $('redraft-button').addEventListener('click', openPalette)
  $('redraft-shortcut').textContent = keyLabel('Mod-KeyK')
  provider.on('connection-close', (event) => {
    if (event && event.code === CLOSE_UNAUTHORIZED) { role = 'none'; showNoAccess(screen, editor) }
  })

  api.session().then((answer) => {
    session = answer
    role = session.role
    engineOff = engineOffReason(session)
    share.setSession(session)
    naming.signed(session.name)
    board.setSession(session)
    renderPresence()
    $('redraft-button').classList.toggle('is-off', Boolean(engineOff))
    if (engineOff) $('redraft-button').title = engineOff
  }, (error) => {
    // A refused token also closes the websocket with 4401; anything else, the websocket decides.
    role = error.status === 401 ? 'none' : 'edit'
  }).then(() => showRole({ screen, editor, board, role }))

  installShortcuts(shortcutActions({ board, view, toasts, openPalette }))
  view.focus()

  // For tests and the console: the document, its editor, and Yjs positions as the API takes them.
  window.redraft = {
    doc, text: ytext, provider, view, board, undoManager: editor.undoManager,
    relativePosition: (index) => board.relativePosition(index),
    absolutePosition: (encoded) => board.absolutePosition(encoded)
  }
}
