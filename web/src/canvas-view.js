// The live canvas of one redraft, as the AI peer publishes it: what earlier canvases already wrote,
// then the current canvas, whose resolved tokens fade in by confidence while unresolved positions
// shimmer, and a step counter that only goes up. The DOM is built once and then updated in place,
// node by node, so a step costs a few attribute writes. The canvas sits beside the passage (a block
// under it), never in its place: the passage stays editable while the AI writes.
import { safeColor } from './trust.js'

export const UNRESOLVED_BELOW = 0.3 // a position under this confidence is still noise: shown as a placeholder
export const DEFAULT_COLOR = '#6d28d9'

const KIND_WORDS = { rewrite: 'rewriting', fill: 'writing', continue: 'continuing' }

/** How a canvas position looks: [kind, text, opacity]; kept pure for the unit tests. */
export function tokenLook ([piece, confidence]) {
  if (!(confidence >= UNRESOLVED_BELOW)) return ['masked', '', 1]
  if (piece === '') return ['empty', '', 1]
  const opacity = Math.round((0.3 + 0.7 * Math.min(1, confidence)) * 20) / 20 // 0.05 steps: fewer style writes
  return ['token', piece, opacity]
}

/** [step, max_steps] of a redraft: the monotonic `progress` where the server sends it. */
export function progressOf (redraft) {
  const progress = redraft.progress && typeof redraft.progress === 'object' ? redraft.progress : redraft
  return [Number(progress.step) || 0, Number(progress.max_steps) || 0]
}

/** Whether a left-to-right remote model writes it (--engine openai): its text fills from the left. */
export function isStreaming (redraft) {
  return Boolean(redraft.progress && typeof redraft.progress === 'object' && redraft.progress.streaming === true)
}

export function stepLabel (redraft, [step, max] = progressOf(redraft)) {
  if (redraft.status === 'queued') return 'waiting for the AI'
  // No denoising steps to count: the model writes token after token, and what it wrote is final.
  if (isStreaming(redraft)) return `writing left to right · ${step} ${step === 1 ? 'token' : 'tokens'}`
  if (!max) return 'starting'
  return `step ${Math.min(step, max)}/${max}`
}

/**
 * The text earlier canvases already wrote: `text` is everything so far (earlier canvases plus the
 * current one), `tokens` only the current canvas, so what precedes the current canvas's pieces.
 */
export function writtenBefore (text, tokens) {
  if (typeof text !== 'string' || !text || !Array.isArray(tokens) || tokens.length === 0) return ''
  const current = tokens.map((token) => (Array.isArray(token) && typeof token[0] === 'string' ? token[0] : '')).join('')
  if (current && text.endsWith(current)) return text.slice(0, text.length - current.length)
  const at = current ? text.lastIndexOf(current.trimEnd()) : -1
  return at > 0 ? text.slice(0, at) : (current ? '' : text)
}

function span (className, text = '') {
  const node = document.createElement('span')
  node.className = className
  if (text) node.textContent = text
  return node
}

export class CanvasView {
  constructor () {
    this.dom = document.createElement('div')
    this.dom.className = 'cm-redraft-canvas'
    this.dom.setAttribute('role', 'status')
    this.dom.setAttribute('aria-live', 'off') // dozens of steps a second would drown a screen reader
    this.label = span('cm-redraft-label')
    this.who = span('cm-redraft-who')
    this.step = span('cm-redraft-step')
    this.label.append(this.who, this.step)
    this.body = document.createElement('div')
    this.body.className = 'cm-redraft-tokens'
    this.before = span('cm-redraft-written')
    this.body.append(this.before)
    this.dom.append(this.label, this.body)
    this.tokens = [] // one span per canvas position, reused from step to step
    this.stop = null
    this.shown = [0, 0] // the furthest [step, max] shown: a late or re-sent state never moves it back
  }

  /** Adds a Stop button (for the one who asked). */
  withStop (onStop) {
    if (this.stop) return this
    this.stop = document.createElement('button')
    this.stop.type = 'button'
    this.stop.className = 'cm-redraft-stop'
    this.stop.textContent = 'Stop'
    this.stop.setAttribute('aria-label', 'Stop')
    this.stop.title = 'Stop this redraft'
    this.stop.addEventListener('mousedown', (event) => event.preventDefault()) // keep the editor's selection
    this.stop.addEventListener('click', onStop)
    this.label.append(this.stop)
    return this
  }

  render (redraft) {
    const requester = redraft.requester || {}
    this.dom.style.setProperty('--who', safeColor(requester.color, DEFAULT_COLOR))
    this.dom.dataset.status = redraft.status
    setText(this.who, `${typeof requester.name === 'string' && requester.name ? requester.name : 'Someone'} · ${KIND_WORDS[redraft.kind] || 'redrafting'}`)
    const [step, max] = progressOf(redraft)
    const [shownStep, shownMax] = this.shown
    if (max && (!shownMax || step / max >= shownStep / shownMax)) this.shown = [step, max]
    setText(this.step, stepLabel(redraft, this.shown))
    // Queued, or a peer without tokens: what it wrote so far, else one shimmering placeholder (the passage
    // itself is right above, so repeating it here would only read as a second copy).
    const tokens = Array.isArray(redraft.tokens) && redraft.tokens.length > 0
      ? redraft.tokens
      : [[typeof redraft.text === 'string' ? redraft.text : '', redraft.text ? 1 : 0]]
    setText(this.before, writtenBefore(redraft.text, redraft.tokens))
    for (let index = 0; index < tokens.length; index++) {
      let node = this.tokens[index]
      if (!node) {
        node = span('')
        this.tokens.push(node)
        this.body.append(node)
      }
      const token = Array.isArray(tokens[index]) ? tokens[index] : ['', 0]
      const [kind, text, opacity] = tokenLook(token)
      if (node.dataset.kind !== kind) { node.dataset.kind = kind; node.className = `cm-redraft-${kind}` }
      setText(node, String(text))
      const alpha = String(opacity)
      if (node.style.opacity !== alpha) node.style.opacity = alpha
    }
    while (this.tokens.length > tokens.length) this.tokens.pop().remove()
  }
}

function setText (node, text) {
  if (node.textContent !== text) node.textContent = text
}
