// Following one redraft over HTTP until it settles. The AI peer's awareness state usually says first,
// but it may drop a redraft from view before this page looked, so the one who asked also polls.

const POLL_MS = [300, 600, 1000, 1500] // quick at first (most redrafts take a second or two), then calmer
const MAX_POLL_FAILURES = 5

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Asks for redraft `id` until `isSettled(answer)`, a 404, MAX_POLL_FAILURES failures in a row, or
 * `isWanted()` turns false (the editor went away). Every answer goes to `onAnswer`.
 */
export async function pollRedraft (api, id, { isSettled, onAnswer, isWanted }) {
  let failures = 0
  for (let attempt = 0; isWanted(); attempt++) {
    await sleep(POLL_MS[Math.min(attempt, POLL_MS.length - 1)])
    if (!isWanted()) break
    try {
      const redraft = await api.redraft(id)
      failures = 0
      onAnswer(redraft)
      if (isSettled(redraft)) break
    } catch (error) {
      if (error.status === 404 || ++failures >= MAX_POLL_FAILURES) break
    }
  }
}
