// What the document page knows about itself, in one place: showEditor creates it and passes it to
// whatever reads it (the redraft board, the palette, the top bar), so no part keeps its own copy.

/** The page's state for `user` ({name, color}, as the others see them), before the server said anything. */
export function createPageState (user) {
  return {
    role: null, // 'edit', 'read' or 'none' once the server says; the editor stays read-only meanwhile so nothing is typed in vain
    session: null, // the server's /session answer: the engine, the model, the AI peer's client ids
    engineOff: null, // why redrafts cannot run on this server, or null
    user,
    isAiBusy: false // whether the AI peer is writing a redraft: the presence bar says so
  }
}

/** Why redrafts cannot run on this server, or null. */
export function engineOffReason (session) {
  const engine = session.engine || {}
  if (engine.mode !== 'off' && engine.status !== 'off') return null
  return 'AI redrafts are off on this server (it was started with --engine off).'
}

/** Why the palette cannot start a redraft here, or null. */
export function paletteBlocker (page) {
  return page.role === 'read' ? 'This is a read-only link: redrafts change the text, so they need an edit link.' : page.engineOff
}

/** Whether the palette should ask the server again for the model: until the engine is ready, it may still change. */
export function isModelPending (page) {
  return Boolean(page.session) && !(page.session.engine && ['ready', 'off'].includes(page.session.engine.status))
}
