// Builds the editor into dist/: one minified bundle plus its stylesheet, and the page
// that loads them with a content hash in the URL so a rebuild is never served stale
// (the server sends assets without Cache-Control, so browsers may cache them heuristically).
import { createHash } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'

const here = dirname(fileURLToPath(import.meta.url))
const dist = join(here, 'dist')
const assets = join(dist, 'assets')

await rm(dist, { recursive: true, force: true })
await mkdir(assets, { recursive: true })
await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.js', style: 'src/style.css' },
  outdir: assets,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  minify: true,
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning'
})

async function versioned (name) {
  const digest = createHash('sha256').update(await readFile(join(assets, name))).digest('hex')
  return `/assets/${name}?v=${digest.slice(0, 12)}`
}

const page = (await readFile(join(here, 'index.html'), 'utf8'))
  .replace('/assets/app.js', await versioned('app.js'))
  .replace('/assets/style.css', await versioned('style.css'))
await writeFile(join(dist, 'index.html'), page)
