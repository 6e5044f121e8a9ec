// The redraft palette: presets or a free instruction for the selection (or the paragraph at
// the cursor: an instruction rewrites, only Continue and Fill in write new text at the cursor),
// with how hard the model works (steps) and whether the result goes straight in or waits as a
// suggestion. It opens beside the passage it will rewrite, never over it. Arrow keys pick, Enter
// runs, Escape closes. It offers only the tasks the server's model declares (the session's
// `model`, jobs/tasks.py), names that model and shows its note: a small model that was never
// taught to follow instructions gets no free instruction to fail at.

// Each preset is one of jobs/tasks.py's tasks; the server knows each task's instruction.
export const PRESETS = [
  { id: 'clearer', label: 'Rewrite clearer', kind: 'rewrite', task: 'rewrite', scope: 'passage' },
  { id: 'shorten', label: 'Shorten', kind: 'rewrite', task: 'shorten', scope: 'passage' },
  { id: 'expand', label: 'Expand', kind: 'rewrite', task: 'expand', scope: 'passage' },
  { id: 'grammar', label: 'Fix spelling', kind: 'rewrite', task: 'fix', scope: 'passage' },
  { id: 'continue', label: 'Continue writing', kind: 'continue', task: 'continue', scope: 'after' },
  { id: 'fill', label: 'Fill in here', kind: 'fill', task: 'fill', scope: 'here' }
]
export const ALL_TASKS = ['rewrite', 'shorten', 'expand', 'fix', 'instruct', 'continue', 'fill']
const ASK_PLACEHOLDER = 'Tell the AI what to do, or pick one below'

/** The tasks a session's model declares: every one while the server does not know its model. */
export function declaredTasks (model) {
  return model && Array.isArray(model.tasks) ? model.tasks : ALL_TASKS
}

/** The presets the model can do, and an "Ask" option for the typed instruction when it takes free ones. */
export function offeredOptions (model, instruction) {
  const tasks = declaredTasks(model)
  const asked = instruction.trim()
  const free = asked && tasks.includes('instruct')
    ? [{ id: 'ask', label: `Ask: “${asked}”`, kind: 'rewrite', task: 'instruct', scope: 'passage', instruction: asked, free: true }]
    : []
  return [...free, ...PRESETS.filter((preset) => tasks.includes(preset.task))]
}

/** The input's placeholder: what typing does, or that this model takes no free instructions. */
export function placeholderFor (model) {
  if (declaredTasks(model).includes('instruct')) return ASK_PLACEHOLDER
  return `${modelName(model)} takes no free instructions: pick one below`
}

/** What the palette says once something is typed that the model cannot take, or null. */
export function typedHint (model, instruction) {
  if (!instruction.trim() || declaredTasks(model).includes('instruct')) return null
  return `${modelName(model)} takes no free instructions: pick one of the tasks above.`
}

const modelName = (model) => model && typeof model.name === 'string' && model.name ? model.name : 'This model'

export const STEP_CHOICES = [['fast', 12], ['balanced', 24], ['best', 48]]
const SETTINGS_KEY = 'redraft.palette'

const isBlank = (line) => line.text.trim() === ''

/** The [from, to) a preset works on, or null where it has nothing to work on. */
export function targetFor (state, scope) {
  const selection = state.selection.main
  if (scope === 'after') return [selection.to, selection.to]
  if (scope === 'here' || !selection.empty) return [selection.from, selection.to]
  const doc = state.doc
  let first = doc.lineAt(selection.head)
  if (isBlank(first)) return null
  let last = first
  while (first.number > 1 && !isBlank(doc.line(first.number - 1))) first = doc.line(first.number - 1)
  while (last.number < doc.lines && !isBlank(doc.line(last.number + 1))) last = doc.line(last.number + 1)
  return [first.from, last.to]
}

function describe (state, scope, range) {
  if (!range) return 'Put the cursor in a paragraph or select some text first.'
  const [from, to] = range
  const words = (state.doc.sliceString(from, to).match(/\S+/g) || []).length
  const count = `${words} word${words === 1 ? '' : 's'}`
  if (from === to) return scope === 'after' ? 'The AI continues from the cursor.' : 'The AI writes new text at the cursor.'
  return state.selection.main.empty ? `The paragraph at the cursor (${count}).` : `The selection (${count}).`
}

function loadSettings () {
  try { return { steps: 24, mode: 'apply', ...JSON.parse(window.localStorage.getItem(SETTINGS_KEY)) } } catch { return { steps: 24, mode: 'apply' } }
}

export function createPalette ({ dialog, view, board, getBlocker, getModel = () => null }) {
  const input = dialog.querySelector('#palette-instruction')
  const list = dialog.querySelector('#palette-presets')
  const scopeLine = dialog.querySelector('#palette-scope')
  const note = dialog.querySelector('#palette-note')
  const modelLine = dialog.querySelector('#palette-model')
  const modelName = dialog.querySelector('#palette-model-name')
  const modelNote = dialog.querySelector('#palette-model-note')
  const runButton = dialog.querySelector('#palette-run')
  let options = []
  let active = 0

  const settings = loadSettings()
  for (const [name, value, fallback] of [['steps', settings.steps, 24], ['mode', settings.mode, 'apply']]) {
    const radio = dialog.querySelector(`input[name="${name}"][value="${value}"]`) || dialog.querySelector(`input[name="${name}"][value="${fallback}"]`)
    radio.checked = true
  }
  const choice = (name) => dialog.querySelector(`input[name="${name}"]:checked`).value
  dialog.addEventListener('change', () => {
    try { window.localStorage.setItem(SETTINGS_KEY, JSON.stringify({ steps: Number(choice('steps')), mode: choice('mode') })) } catch {}
  })

  function optionsFor (instruction) {
    return offeredOptions(getModel(), instruction).map((option) => ({ ...option, range: targetFor(view.state, option.scope) }))
  }

  /** The model's line and note (text only: a worker's published note is never markup), and the placeholder. */
  function showModel () {
    const model = getModel()
    const name = model && typeof model.name === 'string' ? model.name : ''
    const text = model && typeof model.note === 'string' ? model.note : ''
    modelLine.hidden = !name && !text
    modelName.hidden = !name
    modelName.textContent = name ? `Model: ${name}` : ''
    modelNote.hidden = !text
    modelNote.textContent = text
    input.placeholder = placeholderFor(model)
  }

  /**
   * Above or below the passage, whichever has room, so the text it will rewrite stays in sight; where
   * neither has, the page first scrolls the passage up under the top bar to make room below it.
   */
  function place () {
    const range = targetFor(view.state, 'passage') || [view.state.selection.main.head, view.state.selection.main.head]
    dialog.style.marginTop = ''
    const height = dialog.offsetHeight
    const gap = 12
    const measure = () => [view.coordsAtPos(range[0], 1), view.coordsAtPos(range[1], -1)]
    let [top, bottom] = measure()
    if (!top || !bottom) return
    const barBottom = document.querySelector('.bar')?.getBoundingClientRect().bottom || 0
    const fitsBelow = () => window.innerHeight - bottom.bottom >= height + gap
    const fitsAbove = () => top.top - barBottom >= height + gap
    const isOffScreen = top.top < barBottom || top.top > window.innerHeight
    if (isOffScreen || (!fitsBelow() && !fitsAbove())) {
      window.scrollBy(0, top.top - barBottom - gap) // the passage just under the bar, the room under it for the palette
      ;[top, bottom] = measure()
      if (!top || !bottom) return
    }
    const wanted = fitsBelow() ? bottom.bottom + gap : fitsAbove() ? top.top - gap - height : window.innerHeight - height - 8
    dialog.style.marginTop = `${Math.round(Math.max(8, Math.min(wanted, window.innerHeight - height - 8)))}px`
  }

  function render () {
    showModel()
    options = optionsFor(input.value)
    if (!options[active] || !options[active].range) active = Math.max(0, options.findIndex((option) => option.range))
    list.replaceChildren(...options.map((option, index) => {
      const item = document.createElement('div')
      item.id = `palette-option-${option.id}`
      item.className = 'preset'
      item.setAttribute('role', 'option')
      item.setAttribute('aria-selected', String(index === active))
      item.setAttribute('aria-disabled', String(!option.range))
      item.textContent = option.label
      item.addEventListener('mousedown', (event) => event.preventDefault()) // the input keeps focus
      item.addEventListener('click', () => { if (option.range) { active = index; run() } })
      return item
    }))
    const current = options[active]
    input.setAttribute('aria-activedescendant', current ? `palette-option-${current.id}` : '')
    scopeLine.textContent = current ? describe(view.state, current.scope, current.range) : 'Type what the AI should do.' // a model of free instructions only
    const blocker = getBlocker()
    const hint = blocker || typedHint(getModel(), input.value)
    note.hidden = !hint
    note.textContent = hint || ''
    runButton.disabled = Boolean(blocker) || !current || !current.range
    runButton.textContent = current && !current.free ? current.label : 'Redraft'
    if (dialog.open) place() // the typed instruction adds an option: the palette grows, and must still clear the passage
  }

  function move (delta) {
    if (!options.length) return
    for (let step = 1; step <= options.length; step++) {
      const next = (active + delta * step + options.length * step) % options.length
      if (options[next].range) { active = next; break }
    }
    render()
  }

  async function run () {
    const option = options[active]
    if (!option || !option.range || getBlocker()) return
    const [from, to] = option.range
    dialog.close()
    // The task names the instruction of a preset; only `instruct` carries the person's own.
    await board.request({
      from, to, kind: option.kind, task: option.task, instruction: option.instruction, mode: choice('mode'), steps: Number(choice('steps'))
    })
  }

  input.addEventListener('input', () => { active = 0; render() })
  input.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault()
      move(event.key === 'ArrowDown' ? 1 : -1)
    }
  })
  dialog.querySelector('#palette-form').addEventListener('submit', (event) => { event.preventDefault(); run() })
  dialog.querySelector('#palette-cancel').addEventListener('click', () => dialog.close())
  dialog.addEventListener('close', () => view.focus())
  dialog.addEventListener('click', (event) => { if (event.target === dialog) dialog.close() }) // a click on the backdrop

  return {
    /** The session changed (its model became known): the open palette shows what the model offers now. */
    refresh () { if (dialog.open) render() },
    open () {
      if (dialog.open) return
      input.value = ''
      active = 0
      render()
      dialog.showModal()
      place()
      input.focus()
    }
  }
}
