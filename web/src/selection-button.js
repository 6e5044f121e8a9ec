// A small "Redraft" button beside a selection, for those who reach for the mouse.
import { StateField } from '@codemirror/state'
import { showTooltip } from '@codemirror/view'
import { keyLabel } from './shortcuts.js'

function tooltipFor (state, open) {
  const selection = state.selection.main
  if (selection.empty || state.readOnly) return null
  return {
    pos: selection.head,
    above: selection.head === selection.from, // away from the text being selected
    arrow: false,
    create () {
      const dom = document.createElement('div')
      dom.className = 'cm-redraft-float'
      const button = document.createElement('button')
      button.type = 'button'
      button.textContent = '✦ Redraft'
      button.title = `Redraft the selection (${keyLabel('Mod-KeyK')})`
      button.setAttribute('aria-label', `Redraft the selection (${keyLabel('Mod-KeyK')})`)
      button.addEventListener('mousedown', (event) => event.preventDefault()) // keep the selection and focus
      button.addEventListener('click', open)
      dom.append(button)
      return { dom }
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
