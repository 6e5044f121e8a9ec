// The start screen: a new document in one click, one by name, or one opened lately.
import { DOC_NAME, docPath } from './links.js'
import { forgetDocument, recentDocuments, whenOpened } from './recent.js'

function randomName () {
  const bytes = crypto.getRandomValues(new Uint8Array(6))
  return 'draft-' + Array.from(bytes, (byte) => byte.toString(36).padStart(2, '0')).join('')
}

function element (tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props)
  node.append(...children)
  return node
}

function showRecent (token) {
  const section = document.getElementById('recent')
  const list = document.getElementById('recent-list')
  const entries = recentDocuments()
  section.hidden = entries.length === 0
  list.replaceChildren(...entries.map((entry) => {
    // The page's own token (often one for every document) wins over a stored one for this document.
    const link = element('a', { href: docPath(entry.name, token || entry.token), className: 'recent-link' },
      element('span', { className: 'recent-name', textContent: entry.name }),
      element('span', { className: 'recent-when', textContent: whenOpened(entry.openedAt) }))
    const forget = element('button', {
      type: 'button', className: 'icon-button forget', textContent: '×', title: `Remove ${entry.name} from this list`
    })
    forget.setAttribute('aria-label', `Remove ${entry.name} from recent documents`)
    forget.addEventListener('click', () => { forgetDocument(entry.name); showRecent(token) })
    return element('li', {}, link, forget)
  }))
}

export function showStart (token) {
  const screen = document.getElementById('start')
  const form = document.getElementById('open-form')
  const input = document.getElementById('doc-name')
  screen.hidden = false
  showRecent(token)
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
