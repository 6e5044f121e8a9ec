// Short messages at the bottom of the page, some with a button (Undo, Retry): read out by
// screen readers, closed by their × or after a while, never blocking the text: the editor keeps
// the caret scrolled above them.
import { EditorView } from '@codemirror/view'

const DEFAULT_TIMEOUT_MS = { info: 6000, success: 8000, error: 12000 }
const MAX_TOASTS = 4

export function createToasts (region) {
  function show (message, { kind = 'info', actions = [], timeoutMs = DEFAULT_TIMEOUT_MS[kind], key } = {}) {
    if (key) for (const old of region.querySelectorAll('.toast')) if (old.dataset.key === key) old.remove()
    const toast = document.createElement('div')
    toast.className = `toast toast-${kind}`
    toast.setAttribute('role', kind === 'error' ? 'alert' : 'status')
    if (key) toast.dataset.key = key
    const text = document.createElement('p')
    text.textContent = message
    toast.append(text)
    let timer = null
    const close = () => { clearTimeout(timer); toast.remove() }
    for (const { label, run, title } of actions) {
      const action = document.createElement('button')
      action.type = 'button'
      action.className = 'toast-action'
      action.textContent = label
      if (title) action.title = title
      action.addEventListener('click', () => { close(); run() })
      toast.append(action)
    }
    const dismiss = document.createElement('button')
    dismiss.type = 'button'
    dismiss.className = 'icon-button toast-close'
    dismiss.textContent = '×'
    dismiss.setAttribute('aria-label', 'Dismiss')
    dismiss.addEventListener('click', close)
    toast.append(dismiss)
    region.append(toast)
    while (region.children.length > MAX_TOASTS) region.firstElementChild.remove()
    // Hovering or focusing a toast holds it, so a slow reader still reaches its button.
    const arm = () => { clearTimeout(timer); if (timeoutMs) timer = setTimeout(close, timeoutMs) }
    toast.addEventListener('mouseenter', () => clearTimeout(timer))
    toast.addEventListener('mouseleave', arm)
    toast.addEventListener('focusin', () => clearTimeout(timer))
    toast.addEventListener('focusout', arm)
    arm()
    return { close, element: toast }
  }
  return { show }
}

/** Keeps the caret (and what the editor scrolls to) above the toasts on screen. */
export function toastMargin (region) {
  return EditorView.scrollMargins.of(() => {
    const top = region.getBoundingClientRect().top
    return region.children.length ? { bottom: Math.max(0, window.innerHeight - top) + 16 } : null
  })
}
