// The server's HTTP API for one document. Every failure becomes an ApiError whose message a
// person can read: the server's `detail`, or what a status means when there is none.

const STATUS_WORDS = {
  400: 'The request was not valid',
  401: 'This link does not give access to this document',
  403: 'This link does not allow that',
  404: 'Not found',
  410: 'This version was folded into a later one when older history was condensed',
  409: 'The document changed in a way that makes this impossible',
  413: 'The passage is too long for one redraft',
  429: 'The AI is busy',
  503: 'AI redrafts are not available on this server right now'
}

export class ApiError extends Error {
  constructor (status, code, detail, retryAfterS = null) {
    super(detail || STATUS_WORDS[status] || `The server answered ${status}`)
    this.status = status
    this.code = code
    this.retryAfterS = retryAfterS
  }

  /** The message with its advice: when to retry, or that nothing reached the server. */
  get advice () {
    if (this.status === 0) return `${this.message}. Check the connection and try again.`
    if (this.retryAfterS !== null) return `${this.message}. Try again in ${Math.max(1, Math.round(this.retryAfterS))} s.`
    return this.message
  }
}

export class DocumentApi {
  constructor (doc, token) {
    this.base = `/api/docs/${encodeURIComponent(doc)}`
    this.token = token
  }

  async request (method, path, body) {
    const headers = { Accept: 'application/json' }
    if (this.token) headers.Authorization = `Bearer ${this.token}`
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    let response
    try {
      response = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    } catch {
      throw new ApiError(0, 'network', 'The server could not be reached')
    }
    const payload = await response.json().catch(() => null)
    if (response.ok) return payload
    const retryAfter = Number.parseFloat(response.headers.get('Retry-After'))
    throw new ApiError(response.status, payload && payload.error, payload && payload.detail,
      Number.isFinite(retryAfter) ? retryAfter : null)
  }

  session () { return this.request('GET', '/session') }
  share (role) { return this.request('POST', '/share', { role }) }
  // Options left empty (no instruction, no seed) are left out of the body.
  requestRedraft (params) {
    const body = { ...params }
    for (const key of Object.keys(body)) if (body[key] === undefined || body[key] === '') delete body[key]
    return this.request('POST', '/redrafts', body)
  }

  redraft (id) { return this.request('GET', `/redrafts/${encodeURIComponent(id)}`) }
  // `by` ({name, color}) is shown to the others: who accepted, rejected, undid or redid it.
  accept (id, by) { return this.request('POST', `/redrafts/${encodeURIComponent(id)}/accept`, by ? { by } : undefined) }
  undo (id, by) { return this.request('POST', `/redrafts/${encodeURIComponent(id)}/undo`, by ? { by } : undefined) }
  redo (id, by) { return this.request('POST', `/redrafts/${encodeURIComponent(id)}/redo`, by ? { by } : undefined) }
  redrafts () { return this.request('GET', '/redrafts') }
  versions ({ limit, before } = {}) {
    const query = new URLSearchParams()
    if (limit) query.set('limit', String(limit))
    if (before !== undefined && before !== null) query.set('before', String(before))
    const search = query.toString()
    return this.request('GET', `/versions${search ? `?${search}` : ''}`)
  }

  version (id) { return this.request('GET', `/versions/${encodeURIComponent(id)}`) }
  // Ops that turn version `id`'s text into `against`'s: 'current' or another version's id.
  versionDiff (id, against) { return this.request('GET', `/versions/${encodeURIComponent(id)}/diff?against=${encodeURIComponent(against)}`) }
  restoreVersion (id, by) { return this.request('POST', `/versions/${encodeURIComponent(id)}/restore`, by ? { by } : undefined) }
  cancel (id, by) { return this.request('DELETE', `/redrafts/${encodeURIComponent(id)}`, by ? { by } : undefined) }
}
