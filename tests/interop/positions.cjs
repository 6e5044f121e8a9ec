// Builds a document the way people do (several clients, non-ASCII text in separate items, deletions,
// an undo that restores deleted text as new items) with stock Yjs, and prints its update and Yjs' own
// relative positions for every index and both associations, for tests/server/test_positions.py.
'use strict'
const path = require('path')
const { createRequire } = require('module')
const Y = createRequire(path.join(__dirname, '..', '..', 'web', 'package.json'))('yjs')

const b64 = (bytes) => Buffer.from(bytes).toString('base64')
const ada = new Y.Doc()
const bob = new Y.Doc()
const sync = () => { Y.applyUpdate(bob, Y.encodeStateAsUpdate(ada)); Y.applyUpdate(ada, Y.encodeStateAsUpdate(bob)) }
const text = ada.getText('content')
const undo = new Y.UndoManager(text, { trackedOrigins: new Set(['ada']) })
ada.transact(() => text.insert(0, 'Café — naïve 😀 text. '), 'ada')
sync()
bob.getText('content').insert(text.length, 'Bob writes “quotes” and 🎉 here.')
sync()
undo.stopCapturing()
ada.transact(() => { text.delete(5, 3); text.insert(7, 'ß😀') }, 'ada')
undo.stopCapturing()
ada.transact(() => text.delete(0, 2), 'ada')
undo.undo() // the deleted "Ca" comes back as a new item
const positions = {}
for (let i = 0; i <= text.length; i++) {
  for (const assoc of [0, -1]) {
    positions[`${i}:${assoc}`] = b64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(text, i, assoc)))
  }
}
console.log(JSON.stringify({ update: b64(Y.encodeStateAsUpdate(ada)), text: text.toString(), positions }))
