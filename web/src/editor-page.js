// The document screen: joins the document's room, binds the editor, and wires the top bar
// (who is here, connection, versions, share, shortcuts) and the redraft palette to the server.
import { EditorView } from '@codemirror/view'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { absolutePosition, relativePosition } from './anchors.js'
import { DocumentApi } from './api.js'
import { trackConnection } from './connection.js'
import { createEditor } from './editor-view.js'
import { fillHelp } from './help.js'
import { setUpHistory } from './history.js'
import { COLORS, MAX_NAME_LENGTH, awarenessUser, keepColorApart, localUser, rename } from './identity.js'
import { withToken } from './links.js'
import { createPageState, engineOffReason, isModelPending, paletteBlocker } from './page-state.js'
import { createPalette } from './palette.js'
import { anchorPopover, openPopover } from './popover.js'
import { avatar, showPresence } from './presence.js'
import { rememberDocument } from './recent.js'
import { redraftBoard, redraftBoardPlugin } from './redraft-board.js'
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
function setUpName ({ awareness, view, page }) {
  const button = $('you-button')
  const input = $('your-name')
  const colors = $('your-color')
  let signedName = null
  anchorPopover($('name-panel'), button)
  showYou(button, page.user)
  input.maxLength = MAX_NAME_LENGTH
  $('name-panel').addEventListener('toggle', (event) => {
    if (event.newState !== 'open') return
    input.value = page.user.name
    colorChoices(colors, page.user.color)
  })
  const publish = (user) => {
    const shown = signedName ? { ...user, name: signedName } : user
    page.user = shown
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
    const user = keepColorApart(page.user, awareness)
    if (user !== page.user) publish(user)
  })
  return {
    /** The token's signed name, from the session: it replaces the typed one, and the field is read-only. */
    signed (name) {
      if (typeof name !== 'string' || !name) return
      signedName = name
      input.readOnly = true
      $('name-signed').hidden = false
      $('name-signed').textContent = `Your link names you ${name}: history shows it as verified. You can still pick your colour.`
      publish(page.user)
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
function showRole ({ page, screen, editor, board }) {
  const { role } = page
  if (role === 'none') return showNoAccess(screen, editor)
  const isReadOnly = role === 'read'
  editor.setReadOnly(isReadOnly)
  board.schedule() // suggestions' buttons come and go with the role
  screen.dataset.role = role
  $('readonly-badge').hidden = !isReadOnly
  $('notice').hidden = !isReadOnly
  $('notice').textContent = READ_ONLY_NOTE
  $('redraft-button').hidden = isReadOnly
}

/** The palette, or why it does not open on this link. */
function openPalette ({ page, palette, toasts, api }) {
  if (page.role === 'none') toasts.show(NO_ACCESS_NOTE, { kind: 'error', key: 'read-only' })
  else if (page.role === 'read') toasts.show(READ_ONLY_NOTE, { key: 'read-only' })
  else {
    palette.open()
    refreshModel({ page, palette, api })
  }
}

/**
 * The page may have opened while the model loaded (or before a worker was seen): until the engine is ready,
 * the palette asks again, so it offers what the model turned out to declare.
 */
function refreshModel ({ page, palette, api }) {
  if (!isModelPending(page)) return
  api.session().then((answer) => {
    page.session.engine = answer.engine
    page.session.model = answer.model
    palette.refresh()
  }, () => {})
}

/** The server's answer about this link: what the page may do, the model, the signed name. */
function applySession ({ page, session, share, naming, board, renderPresence }) {
  page.session = session
  page.role = session.role
  page.engineOff = engineOffReason(session)
  share.setSession(session)
  naming.signed(session.name)
  board.schedule() // the AI peer's state counts from now on
  renderPresence()
  $('redraft-button').classList.toggle('is-off', Boolean(page.engineOff))
  if (page.engineOff) $('redraft-button').title = page.engineOff
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
  const page = createPageState(localUser())
  awareness.setLocalStateField('user', awarenessUser(page.user))
  trackConnection(provider, doc, $('status'))

  const renderPresence = () => showPresence(awareness, $('presence'), { isAiBusy: page.isAiBusy, session: page.session })
  const open = () => openPalette({ page, palette, toasts, api }) // the palette is made below, before anyone can click
  const editor = createEditor({
    parent: $('content'),
    ytext,
    awareness,
    extensions: [
      redraftBoard({
        ytext,
        awareness,
        api,
        toasts,
        page,
        onActivity: (active) => {
          if (page.isAiBusy !== active.length > 0) { page.isAiBusy = active.length > 0; renderPresence() }
        },
        onHistory: () => history.changed(), // the history panel reloads
        onLanded: () => editor.undoManager.stopCapturing()
      }),
      selectionButton(open), readOnlyGuard(() => page.role === 'read', $('notice')),
      toastMargin($('toasts'))
    ]
  })
  const view = editor.view
  const board = view.plugin(redraftBoardPlugin)
  editor.setReadOnly(true)
  const palette = createPalette({
    dialog: $('palette'),
    view,
    board,
    getBlocker: () => paletteBlocker(page),
    getModel: () => page.session ? page.session.model : null
  })
  awareness.on('change', renderPresence)
  renderPresence()

  const share = setUpShare({ panel: $('share-panel'), api, doc: name })
  const history = setUpHistory({ panel: $('history-panel'), api, board, canEdit: () => page.role === 'edit' })
  setUpVersions({
    panel: $('versions-panel'), api, ytext, toasts, canEdit: () => page.role === 'edit',
    by: () => ({ name: page.user.name, color: page.user.color }), focusText: () => view.focus()
  })
  anchorPopover($('share-panel'), $('share-button'))
  anchorPopover($('help-panel'), $('help-button'))
  anchorPopover($('history-panel'), $('history-button'))
  anchorPopover($('versions-panel'), $('versions-button'))
  fillHelp($('help-panel'))
  const naming = setUpName({ awareness, view, page })
  $('redraft-button').addEventListener('click', open)
  $('redraft-shortcut').textContent = keyLabel('Mod-KeyK')
  provider.on('connection-close', (event) => {
    if (event && event.code === CLOSE_UNAUTHORIZED) { page.role = 'none'; showNoAccess(screen, editor) }
  })

  api.session().then((session) => applySession({ page, session, share, naming, board, renderPresence }), (error) => {
    // A refused token also closes the websocket with 4401; anything else, the websocket decides.
    page.role = error.status === 401 ? 'none' : 'edit'
  }).then(() => showRole({ page, screen, editor, board }))

  installShortcuts(shortcutActions({ board, view, toasts, openPalette: open }))
  view.focus()

  // For tests and the console: the document, its editor, and Yjs positions as the API takes them.
  window.redraft = {
    doc, text: ytext, provider, view, board, page, undoManager: editor.undoManager,
    relativePosition: (index) => relativePosition(ytext, index),
    absolutePosition: (encoded) => absolutePosition(ytext, encoded, view.state.doc.length)
  }
}
