// The page's entry point: the server sends the same page for `/` and `/d/{doc}`; the path picks the screen.
import { showEditor } from './editor-page.js'
import { showStart } from './start-page.js'

const DOC_PATH = /^\/d\/([A-Za-z0-9._-]{1,128})$/

const match = DOC_PATH.exec(window.location.pathname)
const token = new URLSearchParams(window.location.search).get('token')
if (match) showEditor(match[1], token)
else showStart(token)
