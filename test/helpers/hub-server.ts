/**
 * A stand-in for the Hugging Face hub on 127.0.0.1: serves `root/{org}/{name}/{file}` at
 * `/{org}/{name}/resolve/{revision}/{file}` (and `root/{name}/{file}` at `/{name}/resolve/...`), with
 * the headers transformers.js reads: Content-Length (so progress has totals), ETag, Range for its
 * `bytes=0-0` size probes, and the hub's `X-Error-Code` on 404s. Every request path is recorded so tests
 * can count what a download fetched.
 */
import { createHash } from 'node:crypto'
import { cpSync, createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, sep } from 'node:path'

export interface HubServerOptions {
  /** Revisions served (each serves the same files). Default `['main']`. */
  revision?: string | string[]
}

export interface HubServer {
  /** Base URL with trailing slash: use as `remoteHost`. */
  url: string
  /** Path (with query) of every request received, in order, whatever its answer. */
  requests: string[]
  /** Method, path and status of every answered request. */
  log: Array<{ method: string, path: string, status: number }>
  close: () => Promise<void>
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

function notFound (res: ServerResponse, code: string, message: string): void {
  const body = JSON.stringify({ error: message })
  res.writeHead(404, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-error-code': code,
    'x-error-message': message
  })
  res.end(body)
}

async function etagOf (path: string, cache: Map<string, string>, mtimeMs: number): Promise<string> {
  const key = `${path}:${mtimeMs}`
  let tag = cache.get(key)
  if (tag === undefined) {
    tag = `"${createHash('sha256').update(await readFile(path)).digest('hex')}"`
    cache.set(key, tag)
  }
  return tag
}

/** Starts the server; `close()` stops it and ends open connections. */
export async function startHubServer (root: string, options: HubServerOptions = {}): Promise<HubServer> {
  const revisions = new Set(Array.isArray(options.revision) ? options.revision : [options.revision ?? 'main'])
  const requests: string[] = []
  const log: HubServer['log'] = []
  const etags = new Map<string, string>()

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET'
    const rawPath = req.url ?? '/'
    requests.push(rawPath)
    res.on('finish', () => log.push({ method, path: rawPath, status: res.statusCode }))
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    const parts = new URL(rawPath, 'http://hub').pathname.split('/').slice(1)
    const at = parts.indexOf('resolve')
    if (at !== 1 && at !== 2) {
      notFound(res, 'RepoNotFound', 'Repository not found')
      return
    }
    let repo: string[]
    let revision: string
    let file: string[]
    try {
      repo = parts.slice(0, at).map(decodeURIComponent)
      revision = decodeURIComponent(parts[at + 1] ?? '')
      file = parts.slice(at + 2).map(decodeURIComponent)
    } catch {
      notFound(res, 'EntryNotFound', 'Entry not found')
      return
    }
    if (!repo.every(s => SEGMENT.test(s)) || file.length === 0 || file.some(s => s === '' || s === '.' || s === '..' || s.includes(sep) || s.includes('/'))) {
      notFound(res, 'EntryNotFound', 'Entry not found')
      return
    }
    const repoDir = join(root, ...repo)
    const repoStat = await stat(repoDir).catch(() => undefined)
    if (repoStat?.isDirectory() !== true) {
      notFound(res, 'RepoNotFound', 'Repository not found')
      return
    }
    if (!revisions.has(revision)) {
      notFound(res, 'RevisionNotFound', `Invalid rev id: ${revision}`)
      return
    }
    const path = join(repoDir, ...file)
    const info = await stat(path).catch(() => undefined)
    if (info?.isFile() !== true) {
      notFound(res, 'EntryNotFound', 'Entry not found')
      return
    }
    const etag = await etagOf(path, etags, info.mtimeMs)
    const headers: Record<string, string | number> = {
      'content-type': file.at(-1)?.endsWith('.json') === true ? 'application/json; charset=utf-8' : 'application/octet-stream',
      'accept-ranges': 'bytes',
      etag,
      'x-repo-commit': '0'.repeat(40)
    }
    let start = 0
    let end = info.size - 1
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '')
    if (range !== null && info.size > 0) {
      if (range[1] === '') {
        start = Math.max(0, info.size - Number(range[2]))
      } else {
        start = Number(range[1])
        if (range[2] !== '') end = Math.min(end, Number(range[2]))
      }
      if (start > end || start >= info.size) {
        res.writeHead(416, { 'content-range': `bytes */${info.size}` }).end()
        return
      }
      headers['content-range'] = `bytes ${start}-${end}/${info.size}`
      headers['content-length'] = end - start + 1
      res.writeHead(206, headers)
    } else {
      headers['content-length'] = info.size
      res.writeHead(200, headers)
    }
    if (method === 'HEAD' || info.size === 0) {
      res.end()
      return
    }
    createReadStream(path, { start, end }).on('error', () => res.destroy()).pipe(res)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500)
      res.end()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    log,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

/** Lays out model folders as hub repositories (`{ 'Org/name': dir }`) under `root` and serves them. */
export async function serveModelsAsHub (root: string, repos: Record<string, string>, options: HubServerOptions = {}): Promise<HubServer> {
  for (const [repo, dir] of Object.entries(repos)) cpSync(dir, join(root, ...repo.split('/')), { recursive: true })
  return await startHubServer(root, options)
}
