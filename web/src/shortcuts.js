// Every action's keyboard shortcut, in one table: the help popover lists it and the page-wide
// handler runs it. Keys are matched by `code`, so Alt on a Mac (which changes `key`) still works.
// No shortcut is Ctrl+Alt+letter: on Windows that is AltGr, which types letters such as the Polish
// "ż" (AltGr+Z). The page's own chords are Alt+Shift+letter (⌘⌥ on a Mac, where Option types
// characters), and an event that carries AltGr never matches.

export const isMac = typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent)

const symbolsFor = (mac) => mac
  ? { Mod: '⌘', Alt: '⌥', Shift: '⇧', Enter: '↩', Backspace: '⌫', Slash: '/', Chord: '⌘⌥' }
  : { Mod: 'Ctrl', Alt: 'Alt', Shift: 'Shift', Enter: 'Enter', Backspace: 'Backspace', Slash: '/', Chord: 'Alt+Shift' }

/** "Chord-KeyZ" as the user's keyboard says it: "Alt+Shift+Z" or "⌘⌥Z". */
export function keyLabel (shortcut, mac = isMac) {
  const symbols = symbolsFor(mac)
  const parts = shortcut.split('-').map((part) => symbols[part] || part.replace(/^Key|^Digit/, ''))
  return parts.join(mac ? '' : '+')
}

// [shortcut, action id, what it does]; actions without an id are the editor's own keys, listed for help.
// `Chord` is Alt+Shift on Windows and Linux, ⌘⌥ on a Mac.
export const SHORTCUTS = [
  ['Mod-KeyK', 'palette', 'Redraft the selection, or the paragraph at the cursor'],
  ['Mod-KeyJ', 'palette', 'The same (for browsers that keep Ctrl+K)'],
  ['Mod-KeyZ', null, 'Undo your own typing, or your redraft right after it landed'],
  ['Mod-Shift-KeyZ', null, 'Redo'],
  ['Chord-KeyV', 'versions', 'Versions: see any earlier version against now, and restore it'],
  ['Chord-KeyH', 'history', 'Redraft history: undo or redo any redraft'],
  ['Chord-KeyZ', 'undo-redraft', 'Undo the last AI redraft you applied'],
  ['Mod-Shift-Enter', 'accept', 'Accept the suggestion at the cursor (or the latest)'],
  ['Mod-Shift-Backspace', 'reject', 'Reject that suggestion'],
  ['Chord-KeyR', 'retry', 'Ask again for that suggestion'],
  ['Chord-KeyX', 'stop', 'Stop your running redraft'],
  ['Chord-KeyS', 'share', 'Share this document'],
  ['Chord-KeyN', 'name', 'Change your name and colour'],
  ['Mod-Slash', 'help', 'Show these shortcuts'],
  ['Escape', null, 'Close a dialog or menu and return to the text']
]

/** Whether a keydown is `shortcut`; an AltGr keystroke (Ctrl+Alt on Windows) never is. */
export function matches (shortcut, event, mac = isMac) {
  if (event.getModifierState && event.getModifierState('AltGraph')) return false
  if (!mac && event.ctrlKey && event.altKey) return false // AltGr as Windows reports it
  const parts = shortcut.split('-')
  const code = parts.pop()
  const wants = new Set(parts)
  if (wants.delete('Chord')) {
    if (mac) wants.add('Mod').add('Alt')
    else wants.add('Alt').add('Shift')
  }
  const mod = mac ? event.metaKey : event.ctrlKey
  return event.code === code && mod === wants.has('Mod') && event.altKey === wants.has('Alt') &&
    event.shiftKey === wants.has('Shift') && (mac ? !event.ctrlKey : !event.metaKey)
}

/** Runs `actions[id]` for a matching keydown anywhere on the page, ahead of the editor's own keymap. */
export function installShortcuts (actions) {
  window.addEventListener('keydown', (event) => {
    if (event.isComposing) return
    for (const [shortcut, id] of SHORTCUTS) {
      if (id && actions[id] && matches(shortcut, event)) {
        event.preventDefault()
        event.stopPropagation()
        actions[id]()
        return
      }
    }
  }, true)
}
