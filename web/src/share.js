// The Share panel: on a server with a secret, makes an edit or a read-only link for this
// document; without one, explains that the page's own address is the link.
import { copyText } from './popover.js'

function element (tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props)
  node.append(...children)
  return node
}

function linkRow (url, label) {
  const input = element('input', { className: 'link-input', value: url, readOnly: true, spellcheck: false })
  input.setAttribute('aria-label', label)
  input.dataset.autofocus = ''
  const copy = element('button', { type: 'button', className: 'primary', textContent: 'Copy' })
  copy.addEventListener('click', async () => {
    copy.textContent = (await copyText(input)) ? 'Copied' : 'Press Ctrl+C'
    setTimeout(() => { copy.textContent = 'Copy' }, 2000)
  })
  return element('div', { className: 'row' }, input, copy)
}

export function setUpShare ({ panel, api, doc }) {
  const body = panel.querySelector('#share-body')
  let session = null

  function render (result) {
    const children = []
    if (!session) {
      children.push(element('p', { textContent: 'Checking what this link allows…' }))
    } else if (!session.secret) {
      children.push(
        element('p', { textContent: 'This server runs without a secret, so it only listens on this machine and everyone here edits without a link of their own. Share the page’s address:' }),
        linkRow(window.location.href, 'This page’s address'))
    } else {
      const canEdit = session.role === 'edit'
      const edit = element('button', { type: 'button', textContent: 'Edit link', disabled: !canEdit })
      const read = element('button', { type: 'button', textContent: 'Read-only link' })
      edit.addEventListener('click', () => make('edit'))
      read.addEventListener('click', () => make('read'))
      edit.dataset.autofocus = ''
      if (!canEdit) read.dataset.autofocus = ''
      children.push(
        element('p', { textContent: 'Anyone with an edit link can change the text and ask for redrafts; a read-only link shows the text live.' }),
        element('div', { className: 'row' }, edit, read))
      if (!canEdit) children.push(element('p', { className: 'hint', textContent: 'You opened a read-only link, so you can share read-only links only.' }))
    }
    if (result && result.error) children.push(element('p', { className: 'error', textContent: result.error }))
    if (result && result.url) {
      const kind = result.role === 'edit' ? 'Edit link' : 'Read-only link'
      children.push(linkRow(result.url, kind),
        element('p', { className: 'hint', textContent: `${kind}, valid until ${new Date(result.expires_at * 1000).toLocaleString()}.` }))
    }
    body.replaceChildren(...children)
    if (panel.matches(':popover-open')) body.querySelector(result ? '.link-input, .error' : '[data-autofocus]')?.focus()
  }

  async function make (role) {
    try {
      const link = await api.share(role)
      // The page's own origin: what the server believes its address is can differ behind a proxy.
      const url = new URL(`/d/${doc}?token=${encodeURIComponent(link.token)}`, window.location.origin).href
      render({ role, url, expires_at: link.expires_at })
    } catch (error) {
      render({ error: `No link was made: ${error.advice || error.message}` })
    }
  }

  render()
  return {
    setSession (value) { session = value; render() }
  }
}
