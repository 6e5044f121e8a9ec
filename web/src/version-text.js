// The words of the versions panel, as pure functions of the versions API's JSON: who made a version,
// when, what kind of change it was, and a diff's runs with the long unchanged stretches folded.

const ASKED_MAX = 120 // characters of an instruction shown in a row; the detail shows it whole

const dayKey = (date, timeZone) => date.toLocaleDateString('en-CA', timeZone ? { timeZone } : {})

/** "14:32" (today), "Yesterday 09:05", "3 Dec 14:32", "3 Dec 2025 14:32": when a version was made. */
export function versionTime (epochS, nowMs = Date.now(), { locale, timeZone } = {}) {
  const at = new Date(epochS * 1000)
  const zone = timeZone ? { timeZone } : {}
  const clock = at.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit', ...zone })
  if (dayKey(at, timeZone) === dayKey(new Date(nowMs), timeZone)) return clock
  if (dayKey(at, timeZone) === dayKey(new Date(nowMs - 86_400_000), timeZone)) return `Yesterday ${clock}`
  const sameYear = at.toLocaleDateString('en-CA', { year: 'numeric', ...zone }) === new Date(nowMs).toLocaleDateString('en-CA', { year: 'numeric', ...zone })
  const date = at.toLocaleDateString(locale, { day: 'numeric', month: 'short', ...(sameYear ? {} : { year: 'numeric' }), ...zone })
  return `${date} ${clock}`
}

const text = (value) => typeof value === 'string' ? value.trim() : ''
const person = (author) => author && typeof author === 'object' ? author : {}

/** A person's name as history may show it: "Ada", "Ada (unverified)" when only their awareness said so. */
export function authorName (author) {
  const who = person(author)
  const name = text(who.name) || (who.kind === 'ai' ? 'Redraft AI' : 'Someone')
  const isPerson = who.kind !== 'ai' && who.kind !== 'server' // a missing or unknown kind is a person's, never the AI's
  return isPerson && who.verified !== true ? `${name} (unverified)` : name
}

/** Who a version is by, in a line: the author, the AI for whoever asked, or the people a condensed version folds. */
export function versionBy (version) {
  if (version.kind === 'merged' && Array.isArray(version.authors) && version.authors.length) {
    const names = [...new Set(version.authors.map(authorName))]
    return names.length > 3 ? `${names.slice(0, 3).join(', ')} and ${names.length - 3} more` : names.join(', ')
  }
  const author = person(version.author)
  const requester = version.redraft && version.redraft.requester
  if (author.kind === 'ai' && requester) return `${authorName(author)} for ${authorName(requester)}`
  if (author.kind === 'server' && requester) return authorName(requester) // a restore the server made for someone
  return authorName(author)
}

/** An instruction in quotes, shortened for a row unless `whole`. */
export function quoted (instruction, whole = false) {
  const said = text(instruction)
  if (!said) return ''
  return `“${!whole && said.length > ASKED_MAX ? said.slice(0, ASKED_MAX - 1) + '…' : said}”`
}

/** What a version did: "Typed", "Redraft: “Shorter”", "Undid a redraft", "Restored the version of 14:32";
 * an instruction shortened unless `whole`. */
export function versionWhat (version, timeOf = () => null, whole = false) {
  const asked = quoted(version.redraft && version.redraft.instruction, whole)
  const restoredWhen = version.restored === null || version.restored === undefined ? null : timeOf(version.restored)
  if ((version.kind === 'undo' || version.kind === 'redo') && version.restored !== null && version.restored !== undefined) {
    const what = restoredWhen ? `the restore of the version of ${restoredWhen}` : 'a restore'
    return `${version.kind === 'undo' ? 'Undid' : 'Redid'} ${what}`
  }
  switch (version.kind) {
    case 'typing': return 'Typed'
    case 'redraft': return asked ? `Redraft: ${asked}` : 'Redraft'
    case 'undo': return asked ? `Undid the redraft ${asked}` : 'Undid a redraft'
    case 'redo': return asked ? `Redid the redraft ${asked}` : 'Redid a redraft'
    case 'restore': return restoredWhen ? `Restored the version of ${restoredWhen}` : 'Restored an earlier version'
    case 'merged': return 'Older edits, kept as one version'
    default: return 'Changed'
  }
}

/** The API's ops as runs to draw: [{op: 'keep' | 'delete' | 'insert', text}], merged, empty ones dropped. */
export function diffRuns (ops) {
  const names = { '=': 'keep', '-': 'delete', '+': 'insert' }
  const runs = []
  for (const op of Array.isArray(ops) ? ops : []) {
    if (!Array.isArray(op) || !(op[0] in names) || typeof op[1] !== 'string' || !op[1]) continue
    const last = runs[runs.length - 1]
    if (last && last.op === names[op[0]]) last.text += op[1]
    else runs.push({ op: names[op[0]], text: op[1] })
  }
  return runs
}

/** How much changed: {inserted, deleted} characters, and whether anything did. */
export function diffSize (runs) {
  let inserted = 0
  let deleted = 0
  for (const run of runs) {
    if (run.op === 'insert') inserted += [...run.text].length
    else if (run.op === 'delete') deleted += [...run.text].length
  }
  return { inserted, deleted, isSame: inserted === 0 && deleted === 0 }
}

/** `at`, moved off the middle of a surrogate pair so that no cut splits an emoji. */
function whole (value, at) {
  const code = value.charCodeAt(at)
  return code >= 0xdc00 && code <= 0xdfff ? at + 1 : at
}

/**
 * Long unchanged stretches folded to their ends, so a small change in a long document is seen at once:
 * a keep run over `max` characters becomes its first and last `context` characters around a
 * {op: 'fold', text: <the hidden part>} run (the first run keeps only its end, the last only its start).
 */
export function foldUnchanged (runs, { max = 600, context = 160 } = {}) {
  const folded = []
  runs.forEach((run, index) => {
    if (run.op !== 'keep' || run.text.length <= max) return folded.push(run)
    const isFirst = index === 0
    const isLast = index === runs.length - 1
    const head = isFirst ? '' : run.text.slice(0, whole(run.text, context))
    const tail = isLast ? '' : run.text.slice(whole(run.text, run.text.length - context))
    const hidden = run.text.slice(head.length, run.text.length - tail.length)
    if (head) folded.push({ op: 'keep', text: head })
    folded.push({ op: 'fold', text: hidden })
    if (tail) folded.push({ op: 'keep', text: tail })
  })
  return folded
}
