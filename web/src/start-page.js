// The start screen: open a document by name, or make up a fresh name.
import { DOC_NAME, docPath } from './links.js'

function randomName () {
  const bytes = crypto.getRandomValues(new Uint8Array(6))
  return 'draft-' + Array.from(bytes, (byte) => byte.toString(36).padStart(2, '0')).join('')
}

export function showStart (token) {
  const screen = document.getElementById('start')
  const form = document.getElementById('open-form')
  const input = document.getElementById('doc-name')
  screen.hidden = false
  input.focus()

  input.addEventListener('input', () => input.setCustomValidity(''))
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const name = input.value.trim()
    if (!DOC_NAME.test(name)) {
      input.setCustomValidity('Use 1–128 letters, digits, dots, dashes or underscores.')
      input.reportValidity()
      return
    }
    window.location.assign(docPath(name, token))
  })
  document.getElementById('new-doc').addEventListener('click', () => {
    window.location.assign(docPath(randomName(), token))
  })
}
