// Every action's keyboard shortcut, in one table: the help popover lists it and the page-wide
// handler runs it. Keys are matched by `code`, so Alt on a Mac (which changes `key`) still works.

export const isMac = typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent)

const SYMBOLS = isMac
  ? { Mod: '⌘', Alt: '⌥', Shift: '⇧', Enter: '↩', Backspace: '⌫', Slash: '/' }
  : { Mod: 'Ctrl', Alt: 'Alt', Shift: 'Shift', Enter: 'Enter', Backspace: 'Backspace', Slash: '/' }

/** "Mod-Alt-KeyZ" as the user's keyboard says it: "Ctrl+Alt+Z" or "⌘⌥Z". */
export function keyLabel (shortcut) {
  const parts = shortcut.split('-').map((part) => SYMBOLS[part] || part.replace(/^Key|^Digit/, ''))
  return parts.join(isMac ? '' : '+')
}

// [shortcut, action id, what it does]; actions without an id are the editor's own keys, listed for help.
export const SHORTCUTS = [
  ['Mod-KeyK', 'palette', 'Redraft the selection, or the paragraph at the cursor'],
  ['Mod-KeyJ', 'palette', 'The same (for browsers that keep Ctrl+K)'],
  ['Mod-Alt-KeyZ', 'undo-redraft', 'Undo the last AI redraft you applied'],
  ['Mod-Alt-Enter', 'accept', 'Accept the suggestion at the cursor (or the latest)'],
  ['Mod-Alt-Backspace', 'reject', 'Reject that suggestion'],
  ['Mod-Alt-KeyR', 'retry', 'Ask again for that suggestion'],
  ['Mod-Alt-KeyX', 'stop', 'Stop your running redraft'],
  ['Mod-Alt-KeyS', 'share', 'Share this document'],
  ['Mod-Alt-KeyN', 'name', 'Change your name'],
  ['Mod-Slash', 'help', 'Show these shortcuts'],
  ['Mod-KeyZ', null, 'Undo your own typing (never the others’)'],
  ['Mod-Shift-KeyZ', null, 'Redo'],
  ['Escape', null, 'Close a dialog or menu and return to the text']
]

function matches (shortcut, event) {
  const parts = shortcut.split('-')
  const code = parts.pop()
  const wants = new Set(parts)
  const mod = isMac ? event.metaKey : event.ctrlKey
  return event.code === code && mod === wants.has('Mod') && event.altKey === wants.has('Alt') &&
    event.shiftKey === wants.has('Shift') && (isMac ? !event.ctrlKey : !event.metaKey)
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
