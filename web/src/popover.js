// Panels that drop down from a button in the top bar (share, name, shortcuts). The browser's
// popover API gives Escape, light dismiss and focus return; this places them under their button.

/** The panel's left edge: its right edge under the button's, but never off either side of the screen. */
export function panelLeft (buttonRight, panelWidth, viewportWidth, margin = 8) {
  return Math.round(Math.max(margin, Math.min(buttonRight - panelWidth, viewportWidth - panelWidth - margin)))
}

export function anchorPopover (panel, button) {
  const place = () => {
    const rect = button.getBoundingClientRect()
    panel.style.top = `${Math.round(rect.bottom + 8)}px`
    panel.style.right = 'auto'
    panel.style.left = `${panelLeft(rect.right, panel.offsetWidth, document.documentElement.clientWidth)}px`
  }
  panel.addEventListener('toggle', (event) => {
    button.setAttribute('aria-expanded', String(event.newState === 'open'))
    if (event.newState !== 'open') return
    place() // once open, so the panel's own width is known
    panel.querySelector('[data-autofocus]')?.focus()
  })
  button.setAttribute('aria-expanded', 'false')
}

/** Opens a panel from a keyboard shortcut, as a click on its button would. */
export function openPopover (panel) {
  if (!panel.matches(':popover-open')) panel.showPopover()
}

export async function copyText (input) {
  input.select()
  try {
    await navigator.clipboard.writeText(input.value)
    return true
  } catch { // no clipboard API outside a secure context (plain http on a LAN address)
    return document.execCommand('copy')
  }
}
