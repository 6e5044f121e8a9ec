// Binds a <textarea> to a Y.Text both ways. Local edits go in as one minimal splice, so
// remote edits elsewhere in the text survive; remote edits come out as a fresh value with
// the local selection carried through the Y.Text delta.
import * as Y from 'yjs'
import { mapIndex, mapRange, spliceBetween } from './text-ops.js'

export function bindTextarea (ytext, textarea) {
  const origin = { binding: 'textarea' } // tags our own transactions so the observer skips them
  let shown = ytext.toString() // the Y.Text as the textarea last reflected it
  let pending = [] // remote deltas since `shown`, held back while an IME composes
  let isComposing = false
  const undoManager = new Y.UndoManager(ytext, { trackedOrigins: new Set([origin]) })

  textarea.value = shown

  function applyLocal () {
    const splice = spliceBetween(shown, textarea.value, textarea.selectionEnd)
    if (splice === null) return false
    let index = splice.index
    let removed = splice.remove > 0 ? [[index, index + splice.remove]] : []
    for (const delta of pending) { // the splice was made against `shown`: carry it to the Y.Text of now
      index = mapIndex(index, delta, true)
      removed = removed.flatMap(([start, end]) => mapRange(start, end, delta))
    }
    ytext.doc.transact(() => {
      if (splice.insert) ytext.insert(index, splice.insert)
      for (const [start, end] of removed.reverse()) ytext.delete(start + splice.insert.length, end - start)
    }, origin)
    if (pending.length > 0) { // the text now holds remote edits the textarea has not shown
      const caret = index + splice.insert.length
      render(caret, caret)
    } else {
      shown = textarea.value
    }
    return true
  }

  function applyRemote () {
    let { selectionStart: start, selectionEnd: end } = textarea
    const isCollapsed = start === end
    for (const delta of pending) {
      start = mapIndex(start, delta, isCollapsed)
      end = mapIndex(end, delta, true) // a selection does not grow to swallow text typed at its edges
    }
    render(start, end)
  }

  function render (start, end) {
    const { scrollTop, selectionDirection } = textarea
    shown = ytext.toString()
    pending = []
    if (textarea.value !== shown) textarea.value = shown
    textarea.setSelectionRange(start, end, selectionDirection)
    textarea.scrollTop = scrollTop
  }

  // Both sides may have moved (a remote update arrived while the textarea held unsynced input).
  function sync () {
    if (isComposing) return
    if (!applyLocal() && pending.length > 0) applyRemote()
  }

  function onRemote (event, transaction) {
    if (transaction.origin === origin) return
    pending.push(event.delta)
    sync()
  }

  function onKeydown (event) {
    if (!(event.ctrlKey || event.metaKey) || event.altKey) return
    const key = event.key.toLowerCase()
    // The native undo stack is lost whenever a remote edit rewrites the value; this one only holds our edits.
    if (key === 'z' && !event.shiftKey) undoManager.undo()
    else if (key === 'y' || (key === 'z' && event.shiftKey)) undoManager.redo()
    else return
    event.preventDefault()
  }

  function onBeforeInput (event) { // undo and redo from the context menu
    if (event.inputType === 'historyUndo') undoManager.undo()
    else if (event.inputType === 'historyRedo') undoManager.redo()
    else return
    event.preventDefault()
  }

  const onCompositionStart = () => { isComposing = true }
  const onCompositionEnd = () => { isComposing = false; sync() }
  const listeners = [
    ['input', sync], ['keydown', onKeydown], ['beforeinput', onBeforeInput],
    ['compositionstart', onCompositionStart], ['compositionend', onCompositionEnd]
  ]
  for (const [type, listener] of listeners) textarea.addEventListener(type, listener)
  ytext.observe(onRemote)

  return {
    undoManager,
    destroy () {
      ytext.unobserve(onRemote)
      undoManager.destroy()
      for (const [type, listener] of listeners) textarea.removeEventListener(type, listener)
    }
  }
}
