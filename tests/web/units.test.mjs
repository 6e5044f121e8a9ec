// Unit tests for the editor's pure modules under `node --test`; test_units.py runs them with pytest.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { EditorSelection, EditorState } from '../../web/node_modules/@codemirror/state/dist/index.js'
import { isStreaming, progressOf, stepLabel, tokenLook, UNRESOLVED_BELOW, writtenBefore } from '../../web/src/canvas-view.js'
import { describeConnection } from '../../web/src/connection.js'
import { changedShare, tokenize, wordDiff } from '../../web/src/diff.js'
import { askedFor, whenAsked } from '../../web/src/history.js'
import { COLORS, freeColor } from '../../web/src/identity.js'
import { ALL_TASKS, PRESETS, offeredOptions, placeholderFor, targetFor, typedHint } from '../../web/src/palette.js'
import { createPageState, engineOffReason, isModelPending, paletteBlocker } from '../../web/src/page-state.js'
import { panelLeft } from '../../web/src/popover.js'
import { whenOpened } from '../../web/src/recent.js'
import { aiRedrafts, placeRedrafts } from '../../web/src/redraft-awareness.js'
import { isShowing, showRedrafts, shownRedrafts } from '../../web/src/redraft-field.js'
import { hasReached, movesOn } from '../../web/src/redraft-status.js'
import { statusToast } from '../../web/src/redraft-toasts.js'
import { CanvasWidget, SuggestionWidget } from '../../web/src/redraft-widgets.js'
import { caretLabel } from '../../web/src/remote-cursors.js'
import { SHORTCUTS, keyLabel, matches } from '../../web/src/shortcuts.js'
import { isAiPeer, safeColor } from '../../web/src/trust.js'
import { restoreUndoId } from '../../web/src/versions.js'
import { authorName, diffRuns, diffSize, foldUnchanged, versionBy, versionTime, versionWhat } from '../../web/src/version-text.js'

const SEED = Number(process.env.UNITS_SEED || Date.now() % 2 ** 31)
const where = (context) => `UNITS_SEED=${SEED} ${JSON.stringify(context)}` // every random failure names its seed

function random (seed) { // mulberry32: small, seedable
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('a word diff keeps what stays and marks what changed', () => {
  assert.deepEqual(wordDiff('the cat sat', 'the dog sat'), [
    { op: 'keep', text: 'the ' }, { op: 'delete', text: 'cat' }, { op: 'insert', text: 'dog' }, { op: 'keep', text: ' sat' }
  ])
  assert.deepEqual(wordDiff('', 'new text'), [{ op: 'insert', text: 'new text' }])
  assert.deepEqual(wordDiff('same', 'same'), [{ op: 'keep', text: 'same' }])
  assert.deepEqual(tokenize('Hello, wörld 😀!'), ['Hello', ',', ' ', 'wörld', ' ', '😀', '!'])
})

test('random word diffs rebuild both sides', () => {
  const rand = random(SEED)
  const words = ['a', 'b', 'é', '😀', ' ', ', ', '\n', 'cat', 'dog']
  const text = () => Array.from({ length: Math.floor(rand() * 12) }, () => words[Math.floor(rand() * words.length)]).join('')
  for (let round = 0; round < 500; round++) {
    const before = text()
    const after = text()
    const parts = wordDiff(before, after)
    const side = (skip) => parts.filter((part) => part.op !== skip).map((part) => part.text).join('')
    assert.equal(side('insert'), before, where({ before, after, parts }))
    assert.equal(side('delete'), after, where({ before, after, parts }))
    assert.ok(parts.every((part, i) => i === 0 || part.op !== parts[i - 1].op), where({ parts })) // merged runs
  }
})

test('canvas positions: placeholders below the threshold, opacity by confidence', () => {
  assert.deepEqual(tokenLook(['word', UNRESOLVED_BELOW - 0.01]), ['masked', '', 1])
  assert.deepEqual(tokenLook(['word', null]), ['masked', '', 1])
  assert.deepEqual(tokenLook(['', 0.9]), ['empty', '', 1])
  assert.deepEqual(tokenLook([' word', 1]), ['token', ' word', 1])
  assert.deepEqual(tokenLook([' word', 0.5]), ['token', ' word', 0.65])
  assert.equal(stepLabel({ status: 'running', step: 7, max_steps: 16 }), 'step 7/16')
  assert.equal(stepLabel({ status: 'queued', step: 0, max_steps: 0 }), 'waiting for the AI')
  assert.equal(stepLabel({ status: 'running', step: 0, max_steps: 0 }), 'starting')
})

test('the connection line says what a person needs to know', () => {
  assert.deepEqual(describeConnection({ phase: 'connecting', hasSynced: false, unsent: 0 }), ['connecting', 'Connecting…'])
  assert.deepEqual(describeConnection({ phase: 'synced', hasSynced: true, unsent: 0 }), ['connected', 'Connected'])
  assert.deepEqual(describeConnection({ phase: 'disconnected', hasSynced: true, unsent: 3 }),
    ['offline', 'Offline — editing locally, 3 changes not sent yet'])
  assert.deepEqual(describeConnection({ phase: 'connecting', hasSynced: true, unsent: 1 }),
    ['offline', 'Offline — editing locally, 1 change not sent yet'])
  assert.deepEqual(describeConnection({ phase: 'connected', hasSynced: true, unsent: 0 }), ['resyncing', 'Resyncing…'])
  assert.deepEqual(describeConnection({ phase: 'stopped', hasSynced: true, unsent: 0, close: { code: 4401, reason: 'the token has expired' } }),
    ['offline', 'Disconnected — the token has expired (4401)'])
})

test('presets work on the selection, the paragraph at the cursor, or the cursor', () => {
  const doc = 'Title\n\nFirst line\nsecond line\n\nLast'
  const at = (anchor, head = anchor) => EditorState.create({ doc, selection: EditorSelection.single(anchor, head) })
  const paragraph = [7, 7 + 'First line\nsecond line'.length]
  assert.deepEqual(targetFor(at(9), 'passage'), paragraph)
  assert.deepEqual(targetFor(at(paragraph[1]), 'passage'), paragraph)
  assert.equal(targetFor(at(6), 'passage'), null) // a blank line: nothing to rewrite
  assert.deepEqual(targetFor(at(9, 12), 'passage'), [9, 12])
  assert.deepEqual(targetFor(at(12, 9), 'after'), [12, 12])
  assert.deepEqual(targetFor(at(9, 12), 'here'), [9, 12])
  assert.deepEqual(targetFor(at(0), 'passage'), [0, 5])
  assert.deepEqual(targetFor(at(doc.length), 'passage'), [doc.length - 4, doc.length])
})

test('the palette offers what the model declares, and an Ask option only to a model of free instructions', () => {
  const ids = (model, typed = '') => offeredOptions(model, typed).map((option) => option.id)
  const small = { name: 'redraft-small', tasks: ['shorten', 'fix', 'continue', 'fill'], note: 'A small local model.' }
  assert.deepEqual(ids(small), ['shorten', 'grammar', 'continue', 'fill'])
  assert.deepEqual(ids(small, 'make it formal'), ['shorten', 'grammar', 'continue', 'fill']) // typing asks nothing
  assert.equal(placeholderFor(small), 'redraft-small takes no free instructions: pick one below')
  assert.equal(typedHint(small, 'make it formal'), 'redraft-small takes no free instructions: pick one of the tasks above.')
  assert.equal(typedHint(small, '  '), null)
  assert.equal(typedHint(null, 'make it formal'), null) // every task: the typed text is an instruction
  for (const unknown of [null, undefined, {}, { name: 'x', tasks: 'fix' }]) { // no declaration: every task
    assert.deepEqual(ids(unknown, ' formal '), ['ask', 'clearer', 'shorten', 'expand', 'grammar', 'continue', 'fill'])
    assert.equal(placeholderFor(unknown), 'Tell the AI what to do, or pick one below')
  }
  const asked = offeredOptions({ tasks: ALL_TASKS }, '  formal ')[0]
  assert.deepEqual([asked.task, asked.kind, asked.instruction, asked.label], ['instruct', 'rewrite', 'formal', 'Ask: “formal”'])
  assert.deepEqual(ids({ tasks: ['instruct'] }), []) // nothing until something is typed
  assert.equal(placeholderFor({ name: '', tasks: ['fill'] }), 'This model takes no free instructions: pick one below')
  // Every preset is one of jobs/tasks.py's tasks, of its kind.
  const kinds = { rewrite: 'rewrite', shorten: 'rewrite', expand: 'rewrite', fix: 'rewrite', continue: 'continue', fill: 'fill' }
  for (const preset of PRESETS) assert.equal(kinds[preset.task], preset.kind, preset.id)
})

test('recent documents say when they were opened', () => {
  const now = Date.UTC(2026, 10, 27, 12)
  assert.equal(whenOpened(now - 20_000, now), 'just now')
  assert.equal(whenOpened(now - 5 * 60_000, now), '5 min ago')
  assert.equal(whenOpened(now - 3 * 3600_000, now), '3 h ago')
  assert.equal(whenOpened(now - 30 * 3600_000, now), 'yesterday')
})

const key = (code, mods = {}) => ({ code, ctrlKey: false, altKey: false, shiftKey: false, metaKey: false, getModifierState: () => false, ...mods })

test('no shortcut is Ctrl+Alt+letter, and an AltGr keystroke never runs one', () => {
  for (const mac of [false, true]) {
    for (const [shortcut] of SHORTCUTS) {
      assert.ok(!/Mod-Alt|Alt-Mod/.test(shortcut), shortcut)
      const code = shortcut.split('-').pop()
      // AltGr as Windows reports it (Ctrl+Alt), with or without Shift (Polish Ż is AltGr+Shift+Z).
      for (const shiftKey of [false, true]) {
        assert.equal(matches(shortcut, key(code, { ctrlKey: true, altKey: true, shiftKey }), false), false, shortcut)
      }
      assert.equal(matches(shortcut, key(code, { altKey: true, getModifierState: (name) => name === 'AltGraph' }), mac), false)
    }
  }
  assert.equal(matches('Chord-KeyZ', key('KeyZ', { altKey: true, shiftKey: true }), false), true)
  assert.equal(matches('Chord-KeyZ', key('KeyZ', { altKey: true, metaKey: true }), true), true) // ⌘⌥Z on a Mac
  assert.equal(matches('Chord-KeyZ', key('KeyZ', { altKey: true, shiftKey: true }), true), false) // ⌥⇧Z types on a Mac
  assert.equal(matches('Mod-Shift-Enter', key('Enter', { ctrlKey: true, shiftKey: true }), false), true)
  assert.equal(keyLabel('Chord-KeyH', false), 'Alt+Shift+H')
  assert.equal(keyLabel('Chord-KeyH', true), '⌘⌥H')
  assert.equal(keyLabel('Mod-Shift-Enter', false), 'Ctrl+Shift+Enter')
})

test('only the id range the session reserves is the AI, and only strict colours pass', () => {
  const session = { ai_client_id_min: 2 ** 32 }
  assert.equal(isAiPeer(2 ** 32, { user: {} }, session), true)
  assert.equal(isAiPeer(2 ** 32 - 1, { user: { name: 'Redraft AI', ai: true } }, session), false)
  assert.equal(isAiPeer(2 ** 32 + 5, null, session), false)
  assert.equal(isAiPeer(2 ** 32 + 5, { user: {} }, null), false) // no session yet: nobody
  assert.equal(safeColor('#a1b2c3', 'x'), '#a1b2c3')
  assert.equal(safeColor('#a1b2c3cc', 'x'), '#a1b2c3cc')
  for (const bad of ['red', '#abc', 'url(x)', '#a1b2c3; background: url(x)', null, 7]) assert.equal(safeColor(bad, 'x'), 'x')
})

test('the canvas shows earlier canvases before the current one, and its counter never goes back', () => {
  assert.equal(writtenBefore('First part. Second', [[' Second', 0.9]]), 'First part.')
  assert.equal(writtenBefore('First part. Second', [['First part.', 1], [' Second', 0.9]]), '') // earlier ones as a piece
  assert.equal(writtenBefore('', [[' x', 1]]), '')
  assert.deepEqual(progressOf({ step: 3, max_steps: 12, progress: { step: 15, max_steps: 24 } }), [15, 24])
  assert.deepEqual(progressOf({ step: 3, max_steps: 12 }), [3, 12])
  assert.equal(stepLabel({ status: 'running' }, [15, 24]), 'step 15/24')
})

test('statuses move forward, except undo and redo between done and undone', () => {
  assert.equal(movesOn(null, 'queued'), true)
  assert.equal(movesOn('running', 'queued'), false)
  assert.equal(movesOn('suggested', 'expired'), true)
  assert.equal(movesOn('done', 'undone'), true)
  assert.equal(movesOn('undone', 'done'), true)
  assert.equal(movesOn('done', 'running'), false)
  assert.equal(movesOn('done', 'bogus'), false)
})

test('a full rewrite is mostly change; a small edit is not', () => {
  assert.ok(changedShare(wordDiff('The old plan was slow.', 'A faster plan replaced it entirely.')) > 0.5)
  assert.ok(changedShare(wordDiff('Alpha beta gamma delta.', 'Alpha Beta gamma delta.')) < 0.5)
  assert.equal(changedShare([]), 0)
})

test('panels stay on screen, colours avoid the worn ones, labels say who', () => {
  assert.equal(panelLeft(380, 300, 390), 80)
  assert.equal(panelLeft(120, 370, 390), 8) // the Help button far left on a phone: the panel starts on screen
  assert.equal(panelLeft(1000, 400, 1100), 600)
  assert.equal(freeColor([COLORS[0], COLORS[1]]), COLORS[2])
  assert.equal(freeColor(COLORS.concat([COLORS[0]])), COLORS[1])
  assert.equal(caretLabel({ name: 'Ada', role: 'viewer' }), 'Ada (viewing)')
  assert.equal(caretLabel({ name: 'Ada', role: 'editor' }), 'Ada')
  assert.equal(caretLabel({ name: 5 }), 'Anonymous')
  const now = Date.UTC(2026, 11, 6, 1) / 1000
  assert.equal(whenAsked(now - 30, now * 1000), 'just now')
  assert.equal(whenAsked(now - 600, now * 1000), '10 min ago')
  assert.equal(askedFor({ instruction: '  Make it formal ', kind: 'rewrite' }), '“Make it formal”')
  assert.equal(askedFor({ instruction: '', kind: 'continue' }), 'Continue')
})

test('a streaming (left-to-right) redraft counts tokens instead of denoising steps', () => {
  const streaming = { status: 'running', progress: { step: 37, max_steps: 256, streaming: true } }
  assert.equal(isStreaming(streaming), true)
  assert.equal(stepLabel(streaming), 'writing left to right · 37 tokens')
  assert.equal(stepLabel({ ...streaming, progress: { step: 1, max_steps: 256, streaming: true } }), 'writing left to right · 1 token')
  assert.equal(stepLabel({ ...streaming, status: 'queued' }), 'waiting for the AI')
  assert.equal(isStreaming({ status: 'running', progress: { step: 3, max_steps: 48, streaming: 'yes' } }), false)
  assert.equal(stepLabel({ status: 'running', progress: { step: 3, max_steps: 48 } }), 'step 3/48')
})

test('versions say who, when and what, and only a verified name goes unmarked', () => {
  const person = (name, verified = false) => ({ name, color: '#00707f', verified, kind: 'person' })
  assert.equal(authorName(person('Ada')), 'Ada (unverified)')
  assert.equal(authorName(person('Ada', true)), 'Ada')
  assert.equal(authorName({ name: 'Ada', verified: 'yes', kind: 'person' }), 'Ada (unverified)') // only `true` verifies
  assert.equal(authorName({ name: '', kind: 'ai', verified: true }), 'Redraft AI')
  assert.equal(authorName(null), 'Someone (unverified)')
  const shorter = { id: 'r1', instruction: ' Make it shorter ', model: 'm', requester: person('Grace', true) }
  const ai = { name: 'Redraft AI', verified: true, kind: 'ai' }
  assert.equal(versionBy({ kind: 'redraft', author: ai, redraft: shorter }), 'Redraft AI for Grace')
  assert.equal(versionBy({ kind: 'restore', author: { name: 'server', verified: true, kind: 'server' }, redraft: { requester: person('Ada') } }), 'Ada (unverified)')
  const many = ['A', 'B', 'C', 'D', 'E'].map((name) => person(name, true))
  assert.equal(versionBy({ kind: 'merged', author: many[0], authors: [...many, many[0]] }), 'A, B, C and 2 more')
  assert.equal(versionWhat({ kind: 'typing' }), 'Typed')
  assert.equal(versionWhat({ kind: 'redraft', redraft: shorter }), 'Redraft: “Make it shorter”')
  assert.equal(versionWhat({ kind: 'redraft', redraft: { instruction: 'x'.repeat(200) } }).length, 'Redraft: “”'.length + 120)
  assert.equal(versionWhat({ kind: 'redraft', redraft: { instruction: 'x'.repeat(200) } }, () => null, true).length, 'Redraft: “”'.length + 200)
  assert.equal(versionWhat({ kind: 'undo', redraft: null }), 'Undid a redraft')
  assert.equal(versionWhat({ kind: 'redo', redraft: shorter }), 'Redid the redraft “Make it shorter”')
  assert.equal(versionWhat({ kind: 'restore', restored: 7 }, (id) => id === 7 ? '14:32' : null), 'Restored the version of 14:32')
  assert.equal(versionWhat({ kind: 'restore', restored: 8 }, () => null), 'Restored an earlier version')
  assert.equal(versionWhat({ kind: 'undo', restored: 7, redraft: { id: 'x', instruction: null } }, () => '14:32'), 'Undid the restore of the version of 14:32')
  assert.equal(versionWhat({ kind: 'redo', restored: 7, redraft: { id: 'x' } }, () => null), 'Redid a restore')
  const now = Date.UTC(2026, 11, 6, 15, 0)
  const zone = { locale: 'en-GB', timeZone: 'UTC' }
  assert.equal(versionTime(Date.UTC(2026, 11, 6, 14, 32) / 1000, now, zone), '14:32')
  assert.equal(versionTime(Date.UTC(2026, 11, 5, 9, 5) / 1000, now, zone), 'Yesterday 09:05')
  assert.equal(versionTime(Date.UTC(2026, 10, 3, 9, 5) / 1000, now, zone), '3 Nov 09:05')
  assert.equal(versionTime(Date.UTC(2025, 10, 3, 9, 5) / 1000, now, zone), '3 Nov 2025 09:05')
})

test('a restore is undone through the redraft record the server answers with', () => {
  assert.equal(restoreUndoId({ id: 'Xy3_k', kind: 'restore', restored: 7 }), 'Xy3_k')
  assert.equal(restoreUndoId({ redraft_id: 'r9' }), 'r9')
  assert.equal(restoreUndoId({ id: 7 }), null) // a number is a version, not a redraft
  assert.equal(restoreUndoId(null), null)
})

test("a version's diff: the API's ops as runs, sized, long unchanged stretches folded to their ends", () => {
  const runs = diffRuns([['=', 'a'], ['=', 'b'], ['-', 'é😀'], ['+', ''], ['+', 'x'], ['?', 'bad'], 'junk', ['=', 5]])
  assert.deepEqual(runs, [{ op: 'keep', text: 'ab' }, { op: 'delete', text: 'é😀' }, { op: 'insert', text: 'x' }])
  assert.deepEqual(diffSize(runs), { inserted: 1, deleted: 2, isSame: false })
  assert.deepEqual(diffSize(diffRuns([['=', 'same']])), { inserted: 0, deleted: 0, isSame: true })
  assert.deepEqual(diffRuns(null), [])
  const long = 'x'.repeat(1000)
  const folded = foldUnchanged([{ op: 'keep', text: long }, { op: 'insert', text: 'new' }, { op: 'keep', text: long }, { op: 'delete', text: 'old' }, { op: 'keep', text: long }],
    { max: 600, context: 160 })
  assert.deepEqual(folded.map((run) => [run.op, run.text.length]), [
    ['fold', 840], ['keep', 160], ['insert', 3], ['keep', 160], ['fold', 680], ['keep', 160], ['delete', 3], ['keep', 160], ['fold', 840]
  ])
  const rebuilt = folded.filter((run) => run.op !== 'insert').map((run) => run.text).join('')
  assert.equal(rebuilt, long + long + 'old' + long) // folding hides text, never loses it
  const emoji = '😀'.repeat(400) // 800 UTF-16 units: no cut may split a pair
  const cut = foldUnchanged([{ op: 'insert', text: 'a' }, { op: 'keep', text: 'y' + emoji }], { max: 600, context: 160 })
  assert.ok(cut.every((run) => !/^[\udc00-\udfff]|[\ud800-\udbff]$/.test(run.text)), JSON.stringify(cut.map((run) => run.text.length)))
})

const AI_MIN = 2 ** 32
const entry = (id, status, extra = {}) => ({ id, status, anchors: { start: `${id}-start`, end: `${id}-end` }, ...extra })

test("the AI peer's redrafts: only from its reserved ids, only well-formed entries, placed by where they start", () => {
  const session = { ai_client_id_min: AI_MIN }
  const late = entry('late', 'running')
  const early = entry('early', 'suggested')
  const states = new Map([
    [AI_MIN + 7, { redrafts: [late, null, { id: '' }, { id: 3 }, 'junk', early] }],
    [12, { redrafts: [entry('forged', 'suggested')] }], // a stock client claiming to be the AI
    [AI_MIN + 8, { redrafts: 'not a list' }]
  ])
  assert.deepEqual([...aiRedrafts(states, session).keys()], ['late', 'early'])
  assert.deepEqual([...aiRedrafts(states, null).keys()], []) // before the session, nobody is the AI peer
  const where = { 'late-start': 30, 'late-end': 20, 'early-start': 4, 'early-end': 9 } // reversed ends are put in order
  assert.deepEqual(placeRedrafts(aiRedrafts(states, session), (anchor) => where[anchor] ?? null),
    [{ redraft: early, from: 4, to: 9 }, { redraft: late, from: 20, to: 30 }])
  assert.deepEqual(placeRedrafts(new Map([['x', entry('x', 'running')]]), () => null), []) // not in this replica yet
})

test('statuses settle in order; a finished redraft counts as past a suggestion', () => {
  assert.equal(hasReached('done', 'suggested'), true)
  assert.equal(hasReached('undone', 'done'), true)
  assert.equal(hasReached('running', 'suggested'), false)
  assert.equal(hasReached('bogus', 'queued'), false)
})

test("toasts say what happened to one's own redraft, with Undo after it landed and Redo after it was undone", () => {
  const undo = () => 'undo'
  const redo = () => 'redo'
  const [applied, appliedOptions] = statusToast('done', { previous: 'running', undo, redo })
  assert.equal(applied, 'Redraft applied.')
  assert.deepEqual([appliedOptions.kind, appliedOptions.key, appliedOptions.timeoutMs], ['success', 'redraft', 0])
  assert.deepEqual(appliedOptions.actions.map((action) => [action.label, action.run]), [['Undo', undo]])
  assert.equal(statusToast('done', { previous: 'undone', undo, redo })[0], 'Redraft put back in.')
  assert.deepEqual(statusToast('undone', { previous: 'done', undo, redo })[1].actions.map((action) => [action.label, action.run]), [['Redo', redo]])
  assert.deepEqual(statusToast('failed', { detail: 'model crashed' }), ['The redraft failed (model crashed). Nothing was changed.', { kind: 'error', key: 'redraft' }])
  assert.match(statusToast('conflict', { previous: 'running' })[0], /\(someone deleted or rewrote it\)/)
  assert.match(statusToast('conflict', { previous: 'suggested' })[0], /^Your suggestion no longer fits/)
  assert.equal(statusToast('rejected', { rejectedBy: { name: 'Grace' } })[0], 'Grace rejected your suggestion; the passage stays as it is.')
  assert.equal(statusToast('rejected', { rejectedBy: { name: 42 } })[0], 'Someone in the document rejected your suggestion; the passage stays as it is.')
  assert.equal(statusToast('rejected', { isOwnRejection: true }), null) // this page rejected it: it knows
  assert.equal(statusToast('running', {}), null)
})

test('the page state: who may redraft here, and when the model is still to be asked for', () => {
  const page = createPageState({ name: 'Ada', color: '#00707f' })
  assert.deepEqual(page, { role: null, session: null, engineOff: null, user: { name: 'Ada', color: '#00707f' }, isAiBusy: false })
  assert.equal(isModelPending(page), false) // no session yet: nothing to ask again
  page.session = { engine: { mode: 'local', status: 'loading' } }
  assert.equal(isModelPending(page), true)
  page.session.engine.status = 'ready'
  assert.equal(isModelPending(page), false)
  assert.equal(engineOffReason({ engine: { mode: 'off' } }), 'AI redrafts are off on this server (it was started with --engine off).')
  assert.equal(engineOffReason({ engine: { mode: 'local', status: 'ready' } }), null)
  page.engineOff = 'off here'
  assert.equal(paletteBlocker({ ...page, role: 'edit' }), 'off here')
  assert.match(paletteBlocker({ ...page, role: 'read' }), /^This is a read-only link/)
})

/** The shown field's decorations as [from, to, class or widget kind]. */
function drawn (state) {
  const out = []
  state.field(shownRedrafts).marks.between(0, state.doc.length, (from, to, mark) => {
    out.push([from, to, mark.spec.class || mark.spec.widget.constructor.name])
  })
  return out
}

test('the shown redrafts field: marks and widgets from the board, mapped through edits until set anew', () => {
  let state = EditorState.create({ doc: 'one two three\nfour five', extensions: [shownRedrafts] })
  assert.deepEqual(drawn(state), [])
  const running = entry('r', 'running')
  const suggestion = entry('s', 'suggested', { mode: 'suggest', text: 'FOUR five' })
  const next = {
    canEdit: true,
    placed: [
      { redraft: running, from: 4, to: 7, isMine: true },
      { redraft: suggestion, from: 14, to: 23, isMine: false },
      { redraft: entry('d', 'done'), from: 0, to: 3, isMine: true }, // out of order on purpose: Decoration.set sorts
      { redraft: entry('c', 'conflict', { mode: 'apply' }), from: 8, to: 13, isMine: true } // an applied conflict is over
    ]
  }
  state = state.update({ effects: showRedrafts.of(next) }).state
  assert.deepEqual(drawn(state), [
    [0, 3, 'cm-redraft-applied'], [4, 7, 'cm-redraft-busy'], [13, 13, 'CanvasWidget'], [14, 23, 'cm-redraft-pending'], [23, 23, 'SuggestionWidget']
  ])
  assert.equal(state.field(shownRedrafts).placed[1].current, 'four five') // the text the suggestion is diffed against
  assert.equal(isShowing(state.field(shownRedrafts), next, state.doc), true)

  // Typing before the passages moves them; the suggestion keeps the text it was drawn with.
  state = state.update({ changes: { from: 0, insert: 'zero ' } }).state
  assert.deepEqual(drawn(state), [
    [5, 8, 'cm-redraft-applied'], [9, 12, 'cm-redraft-busy'], [18, 18, 'CanvasWidget'], [19, 28, 'cm-redraft-pending'], [28, 28, 'SuggestionWidget']
  ])
  assert.deepEqual(state.field(shownRedrafts).placed.map(({ from, to }) => [from, to]), [[9, 12], [19, 28], [5, 8], [13, 18]]) // in the order given
  const moved = { ...next, placed: state.field(shownRedrafts).placed.map(({ current, ...rest }) => rest) }
  assert.equal(isShowing(state.field(shownRedrafts), moved, state.doc), true)

  // Typing inside the suggested passage: the board must redraw it against the new text.
  state = state.update({ changes: { from: 20, insert: 'X' } }).state
  const typed = { ...next, placed: state.field(shownRedrafts).placed.map(({ current, ...rest }) => rest) }
  assert.equal(isShowing(state.field(shownRedrafts), typed, state.doc), false)
  assert.equal(isShowing(state.field(shownRedrafts), { ...typed, placed: typed.placed.slice(0, 3) }, state.doc), false)
  // A new step is a new entry (the canvas moves on); a reader loses the suggestion's buttons.
  const stepped = { ...moved, placed: moved.placed.map((item) => item.redraft === running ? { ...item, redraft: { ...running } } : item) }
  assert.equal(isShowing(state.field(shownRedrafts), stepped, state.doc), false)
  assert.equal(isShowing(state.field(shownRedrafts), { ...moved, canEdit: false }, state.doc), false)
})

test("widgets keep their DOM for the same look, and say when it changed: a canvas's next step, a suggestion's buttons", () => {
  const running = entry('r', 'running')
  assert.equal(new CanvasWidget(running, true).eq(new CanvasWidget(running, true)), true)
  assert.equal(new CanvasWidget(running, true).eq(new CanvasWidget({ ...running }, true)), false) // a new step: updateDOM draws it
  assert.equal(new CanvasWidget(running, false).eq(new CanvasWidget(running, true)), false) // ours now: a Stop button
  const suggestion = entry('s', 'suggested', { text: 'new' })
  const widget = (redraft, current, options) => new SuggestionWidget(redraft, current, { canEdit: true, isMine: false, ...options })
  assert.equal(widget(suggestion, 'old').eq(widget({ ...suggestion }, 'old')), true) // the AI peer sent the same again
  assert.equal(widget(suggestion, 'old').eq(widget(suggestion, 'older')), false)
  assert.equal(widget(suggestion, 'old').eq(widget(suggestion, 'old', { isMine: true })), false) // Retry shows
  assert.equal(widget(suggestion, 'old').eq(widget(suggestion, 'old', { canEdit: false })), false)
  assert.equal(widget(suggestion, 'old').eq(widget({ ...suggestion, status: 'expired' }, 'old')), false)
})
