// The shortcuts panel: the page-wide shortcuts table, then the palette's own keys.
import { SHORTCUTS, keyLabel } from './shortcuts.js'

const PALETTE_KEYS = [['↑ ↓', 'Choose a preset'], ['Enter', 'Run it (or your typed instruction)'], ['Escape', 'Close the palette']]

function row (keys, what) {
  const tr = document.createElement('tr')
  const key = document.createElement('td')
  const kbd = document.createElement('kbd')
  kbd.textContent = keys
  key.append(kbd)
  const text = document.createElement('td')
  text.textContent = what
  tr.append(key, text)
  return tr
}

export function fillHelp (panel) {
  panel.querySelector('#help-keys').replaceChildren(...SHORTCUTS.map(([shortcut, , what]) => row(keyLabel(shortcut), what)))
  panel.querySelector('#help-palette-keys').replaceChildren(...PALETTE_KEYS.map(([keys, what]) => row(keys, what)))
}
