// A small "Redraft" button beside a selection, for those who reach for the mouse. It sits in the
// margin to the right of the text, level with the line the selection ends on, so it covers no text
// (not the next line, as a tooltip under the caret did). Where there is no margin (a phone), the
// top bar's Redraft button does the same and this one stays hidden.
import { StateField } from '@codemirror/state'
import { showTooltip } from '@codemirror/view'
import { keyLabel } from './shortcuts.js'

const GAP_PX = 12

function tooltipFor (state, open) {
  const selection = state.selection.main
  if (selection.empty || state.readOnly) return null
  return {
    pos: selection.head,
    above: false,
    arrow: false,
    clip: false, // its place is outside the text column, where CodeMirror would hide it
    create (view) {
      const dom = document.createElement('div')
      dom.className = 'cm-redraft-float'
      const button = document.createElement('button')
      button.type = 'button'
      button.textContent = '✦ Redraft'
      button.title = `Redraft the selection (${keyLabel('Mod-KeyK')})`
      button.addEventListener('mousedown', (event) => event.preventDefault()) // keep the selection and focus
      button.addEventListener('click', open)
      dom.append(button)
      return {
        dom,
        getCoords (pos) {
          const line = view.coordsAtPos(pos, pos === view.state.selection.main.from ? 1 : -1)
          const right = view.contentDOM.getBoundingClientRect().right + GAP_PX
          const top = line ? line.top : 0
          return { left: right, right, top, bottom: top }
        }
      }
    }
  }
}

export function selectionButton (open) {
  return StateField.define({
    create: (state) => tooltipFor(state, open),
    update (tooltip, transaction) {
      if (!transaction.docChanged && !transaction.selection && transaction.startState.readOnly === transaction.state.readOnly) return tooltip
      return tooltipFor(transaction.state, open)
    },
    provide: (field) => showTooltip.from(field)
  })
}
