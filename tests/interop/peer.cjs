// A stock Yjs client (yjs + y-websocket's WebsocketProvider, unmodified) driven
// over stdin/stdout by the Python tests: one JSON command per line in, one JSON
// reply per line out. It resolves its packages from web/node_modules.
'use strict'
const path = require('path')
const { createRequire } = require('module')
const webRequire = createRequire(path.join(__dirname, '..', '..', 'web', 'package.json'))
const Y = webRequire('yjs')
const { WebsocketProvider } = webRequire('y-websocket')
const WebSocket = webRequire('ws')
const readline = require('readline')

const doc = new Y.Doc()
const text = doc.getText('content')
let provider = null
const events = [] // closes and permission-denied notices, in order

// Code point <-> UTF-16 index conversion: fuzz and typing commands pick positions
// in code points, here and at this instant, so an index can never land between
// the two halves of a surrogate pair (an update that does is refused by the server).
function utf16Index (s, codePoints) {
  let i = 0
  for (let n = 0; n < codePoints && i < s.length; n++) {
    const c = s.charCodeAt(i)
    i += c >= 0xD800 && c <= 0xDBFF && i + 1 < s.length ? 2 : 1
  }
  return i
}

function codePointLength (s) { return Array.from(s).length }

function applyOp (op) {
  const s = text.toString()
  const chars = codePointLength(s)
  if (op.op === 'append') {
    text.insert(text.length, op.text)
  } else if (op.op === 'insert') {
    text.insert(utf16Index(s, Math.floor(op.at * (chars + 1))), op.text)
  } else if (chars > 0) {
    const index = Math.floor(op.at * chars)
    const start = utf16Index(s, index)
    const end = utf16Index(s, index + Math.min(op.count, chars - index))
    text.delete(start, end - start)
  }
}

let typing = null // { timer, typed }
const aiLog = [] // every redraft entry the AI peer published, as this client saw it

function reply (msg) { process.stdout.write(JSON.stringify(msg) + '\n') }

function waitFor (predicate, timeoutS) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutS * 1000
    const tick = () => {
      if (predicate()) return resolve()
      if (Date.now() > deadline) return reject(new Error('timed out'))
      setTimeout(tick, 5)
    }
    tick()
  })
}

const commands = {
  connect ({ url, doc: room, params, clientName }) {
    provider = new WebsocketProvider(url, room, doc, {
      WebSocketPolyfill: WebSocket,
      params: params || {},
      maxBackoffTime: 500,
      disableBc: true
    })
    provider.on('connection-close', (event) => {
      events.push({ type: 'close', code: event ? event.code : null, reason: event ? String(event.reason || '') : '' })
    })
    // y-websocket reports a permission-denied auth message through console.warn.
    console.warn = (...args) => events.push({ type: 'warn', message: args.join(' ') })
    if (clientName) provider.awareness.setLocalStateField('user', { name: clientName })
    provider.awareness.on('change', () => {
      provider.awareness.getStates().forEach((state) => {
        for (const r of (state && state.redrafts) || []) {
          if (aiLog.length < 5000) aiLog.push({ id: r.id, status: r.status, step: r.step, max_steps: r.max_steps, text: r.text, tokens: r.tokens.length, anchors: r.anchors, ai: state.user && state.user.ai })
        }
      })
    })
    return {}
  },
  async wait_synced ({ seconds }) {
    await waitFor(() => provider && provider.synced, seconds || 10)
    return {}
  },
  insert ({ index, text: t }) { text.insert(index, t); return { text: text.toString() } },
  delete ({ index, length }) { text.delete(index, length); return { text: text.toString() } },
  text () { return { text: text.toString() } },
  async wait_text ({ text: expected, seconds }) {
    await waitFor(() => text.toString() === expected, seconds || 10)
    return { text: text.toString() }
  },
  disconnect () { provider.disconnect(); return {} },
  reconnect () { provider.connect(); return {} },
  // Reconnects and types the moment the socket opens, before the server's sync step 1 can arrive: with
  // edits made offline, that keystroke reaches the server ahead of the edits it depends on.
  reconnect_typing ({ index, text: t }) {
    const onStatus = ({ status }) => {
      if (status !== 'connected') return
      provider.off('status', onStatus)
      text.insert(index, t)
    }
    provider.on('status', onStatus)
    provider.connect()
    return {}
  },
  set_awareness ({ field, value }) { provider.awareness.setLocalStateField(field, value); return {} },
  awareness () {
    const states = {}
    provider.awareness.getStates().forEach((state, id) => { states[id] = state })
    return { clientId: doc.clientID, states }
  },
  // A Yjs relative position of a UTF-16 index, as a browser sends it with a redraft request.
  relpos ({ index, assoc }) {
    const rel = Y.createRelativePositionFromTypeIndex(text, index, assoc || 0)
    return { relpos: Buffer.from(Y.encodeRelativePosition(rel)).toString('base64') }
  },
  // Where a relative position (base64) points now, as a UTF-16 index, or null.
  resolve ({ relpos }) {
    const abs = Y.createAbsolutePositionFromRelativePosition(Y.decodeRelativePosition(Buffer.from(relpos, 'base64')), doc)
    return { index: abs ? abs.index : null }
  },
  ai_log () { return { log: aiLog } },
  state () { return { update: Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64') } },
  events () { return { events } },
  // Each op is its own transaction, hence its own update message, as a user's keystrokes are.
  apply_ops ({ ops }) { ops.forEach(applyOp); return { text: text.toString() } },
  // Appends pieces[k % pieces.length] at the end every intervalMs until stop_typing.
  start_typing ({ pieces, intervalMs }) {
    typing = { typed: 0, timer: null }
    typing.timer = setInterval(() => {
      text.insert(text.length, pieces[typing.typed % pieces.length])
      typing.typed++
    }, intervalMs)
    return {}
  },
  stop_typing () {
    clearInterval(typing.timer)
    return { typed: typing.typed, text: text.toString() }
  },
  async quit () { if (provider) provider.destroy(); setTimeout(() => process.exit(0), 10); return {} }
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  const msg = JSON.parse(line)
  try {
    const result = await commands[msg.cmd](msg)
    reply({ id: msg.id, ok: true, ...result })
  } catch (err) {
    reply({ id: msg.id, ok: false, error: String(err && err.message ? err.message : err), text: text.toString() })
  }
})
rl.on('close', () => process.exit(0))
