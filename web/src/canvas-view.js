// The live canvas of one redraft, as the AI peer publishes it: resolved tokens fade in by
// confidence, unresolved positions shimmer, a step counter runs. The DOM is built once and
// then updated in place, node by node, so a step costs a few attribute writes and the text
// around it never moves for anything but the new words themselves.

export const UNRESOLVED_BELOW = 0.3 // a position under this confidence is still noise: shown as a placeholder

const KIND_WORDS = { rewrite: 'rewriting', fill: 'writing', continue: 'continuing' }

/** How a canvas position looks: [kind, text, opacity]; kept pure for the unit tests. */
export function tokenLook ([piece, confidence]) {
  if (!(confidence >= UNRESOLVED_BELOW)) return ['masked', '', 1]
  if (piece === '') return ['empty', '', 1]
  const opacity = Math.round((0.3 + 0.7 * Math.min(1, confidence)) * 20) / 20 // 0.05 steps: fewer style writes
  return ['token', piece, opacity]
}

export function stepLabel (redraft) {
  if (redraft.status === 'queued') return 'waiting for the AI'
  if (!redraft.max_steps) return 'starting'
  return `step ${Math.min(redraft.step || 0, redraft.max_steps)}/${redraft.max_steps}`
}

function span (className, text = '') {
  const node = document.createElement('span')
  node.className = className
  if (text) node.textContent = text
  return node
}

export class CanvasView {
  constructor () {
    this.dom = span('cm-redraft-canvas')
    this.dom.setAttribute('role', 'status')
    this.dom.setAttribute('aria-live', 'off') // dozens of steps a second would drown a screen reader
    this.label = span('cm-redraft-label')
    this.label.contentEditable = 'false'
    this.who = span('cm-redraft-who')
    this.step = span('cm-redraft-step')
    this.label.append(this.who, this.step)
    this.body = span('cm-redraft-tokens')
    this.dom.append(this.label, this.body)
    this.tokens = [] // one span per canvas position, reused from step to step
    this.stop = null
  }

  /** Adds a Stop button (for the one who asked). */
  withStop (onStop) {
    if (this.stop) return this
    this.stop = document.createElement('button')
    this.stop.type = 'button'
    this.stop.className = 'cm-redraft-stop'
    this.stop.textContent = 'Stop'
    this.stop.setAttribute('aria-label', 'Stop this redraft')
    this.stop.addEventListener('mousedown', (event) => event.preventDefault()) // keep the editor's selection
    this.stop.addEventListener('click', onStop)
    this.label.append(this.stop)
    return this
  }

  render (redraft) {
    const requester = redraft.requester || {}
    this.dom.style.setProperty('--who', requester.color || '#7c3aed')
    this.dom.dataset.status = redraft.status
    setText(this.who, `${requester.name || 'Someone'} · ${KIND_WORDS[redraft.kind] || 'redrafting'}`)
    setText(this.step, stepLabel(redraft))
    const tokens = Array.isArray(redraft.tokens) && redraft.tokens.length > 0
      ? redraft.tokens
      : [[redraft.text || redraft.original || '', redraft.text ? 1 : 0.5]] // queued, or a peer without tokens
    for (let index = 0; index < tokens.length; index++) {
      let node = this.tokens[index]
      if (!node) {
        node = span('')
        this.tokens.push(node)
        this.body.append(node)
      }
      const [kind, text, opacity] = redraft.status === 'queued' ? ['waiting', tokens[index][0], 1] : tokenLook(tokens[index])
      if (node.dataset.kind !== kind) { node.dataset.kind = kind; node.className = `cm-redraft-${kind}` }
      setText(node, text)
      const alpha = String(opacity)
      if (node.style.opacity !== alpha) node.style.opacity = alpha
    }
    while (this.tokens.length > tokens.length) this.tokens.pop().remove()
  }
}

function setText (node, text) {
  if (node.textContent !== text) node.textContent = text
}
