/**
 * `ipfs-accelerate ipfs ...`: the embedded content store from the shell, with Kubo's CIDs.
 *
 *   ipfs add <file|dir|->      prints the root CID (folders as UnixFS directories, files streamed)
 *   ipfs cat <cid[/path]>      streams a file to stdout
 *   ipfs get <cid[/path]> -o   writes a file or folder (atomically: complete or not at all)
 *   ipfs pin <cid[/path]> | pin add <cid[/path]> | pin ls | pin rm <cid>
 *   ipfs gc                    removes blocks no pin holds
 *
 * Every command opens the store on `--repo`, else the config's `ipfs.repo`, else the default repository,
 * and stops it before returning. Commands that read content (cat, get, pin, models pull) go through the
 * ContentRouter built from the config, as the API does: the embedded store first, then `ipfs.local_node`
 * and `ipfs.gateway` (blocks fetched are verified and kept in the embedded store). CIDs are parsed before
 * the store is opened, so a bad one is a ValidationError (exit code 2) with no I/O done.
 */
import { once } from 'node:events'
import { stat } from 'node:fs/promises'
import path from 'node:path'
import type { Command } from 'commander'
import { NotFoundError, ValidationError } from '../../errors.js'
import { formatBytes } from '../../config/units.js'
import type { ResolvedConfig } from '../../config/schema.js'
import { parseIpfsPath } from '../../content/cid.js'
import { isPinnedRoot } from '../../content/pin-listing.js'
import type { CID } from 'multiformats/cid'
import { ContentRouter } from '../../content/content-router.js'
import { HeliaStore, defaultRepoPath } from '../../content/helia-store.js'
import { checkDestination, exportUnixfs } from '../../content/unixfs-export.js'
import type { TransferProgress } from '../../content/content-store.js'
import type { CidVersion } from '../../content/unixfs-layout.js'
import { cliConfig } from '../config-option.js'
import { createProgressReporter, type ProgressReporter } from '../progress-bar.js'
import { pathValue } from '../path-value.js'

/** `--cid-version`: 0 or 1, else a ValidationError (exit code 2). */
export function parseCidVersion (value: string): CidVersion {
  if (value === '0') return 0
  if (value === '1') return 1
  throw ValidationError.field('cid-version', `expected 0 or 1, got ${JSON.stringify(value)}`)
}

/**
 * Runs `fn` with the store of `--repo` / `ipfs.repo` / the default repository, and stops the store after,
 * whatever happens. Ctrl-C aborts the signal passed to `fn`, so transfers clean up before the exit.
 */
export async function withStore<T> (command: Command, fn: (store: HeliaStore, config: ResolvedConfig, signal: AbortSignal) => Promise<T>): Promise<T> {
  const config = cliConfig(command)
  const opts = command.optsWithGlobals() as { repo?: string }
  const store = new HeliaStore({ repo: opts.repo ?? config.ipfs.repo ?? defaultRepoPath(), cidVersion: config.ipfs.cid_version })
  const controller = new AbortController()
  const onInterrupt = (): void => { controller.abort() }
  process.once('SIGINT', onInterrupt)
  try {
    return await fn(store, config, controller.signal)
  } finally {
    process.removeListener('SIGINT', onInterrupt)
    await store.stop()
  }
}

/**
 * Runs `fn` with the ContentRouter of the config's `ipfs` section over the store `withStore` opens: reads
 * try the embedded store, then `ipfs.local_node`, the local gateway and `ipfs.gateway`, as the API's do.
 */
export async function withContent<T> (command: Command, fn: (router: ContentRouter, config: ResolvedConfig, signal: AbortSignal) => Promise<T>): Promise<T> {
  return await withStore(command, async (store, config, signal) => {
    const router = await ContentRouter.create({ config: config.ipfs, helia: store })
    return await fn(router, config, signal)
  })
}

/**
 * With `ipfs.local_node` in the config, copies what a command just added to that Kubo node (pinned unless
 * `pin` is false), as the API's writes do; otherwise does nothing (and contacts nothing).
 */
export async function copyToKubo (store: HeliaStore, config: ResolvedConfig, cid: CID, options: { signal: AbortSignal, pin?: boolean }): Promise<void> {
  if (config.ipfs.local_node === undefined) return
  // no local gateway probe: only the Kubo store takes copies
  const router = await ContentRouter.create({ config: { ...config.ipfs, enable_local_gateway: false }, helia: store })
  await router.replicate(cid, options)
}

/**
 * A progress reporter on stderr. `always`: also when stderr is not a terminal (one line per file, for
 * downloads); otherwise only live bars on a terminal, since a line saying "downloaded" would be wrong
 * for an add and noise on a pipe.
 */
export function progressReporter (always: boolean): ProgressReporter | undefined {
  return always || process.stderr.isTTY ? createProgressReporter(process.stderr) : undefined
}

/** Adapts the store's byte counts for one named transfer to the reporter. */
function byteProgress (reporter: ProgressReporter | undefined, file: string): ((p: TransferProgress) => void) | undefined {
  if (reporter === undefined) return undefined
  return ({ bytes, total }) => {
    reporter.onProgress({ file, status: total !== undefined && bytes >= total ? 'done' : 'progress', loaded: bytes, total: total ?? 0 })
  }
}

/** Adds the `--repo` option (on each command, so it may come after the arguments). */
export function repoOption (command: Command): Command {
  return command.option('--repo <dir>', 'repository folder (default: ipfs.repo from the config, else $IPFS_ACCELERATE_HOME/ipfs or ~/.cache/ipfs-accelerate/ipfs)', pathValue('repo'))
}

async function writeOut (chunk: Uint8Array, signal: AbortSignal): Promise<void> {
  if (!process.stdout.write(chunk)) await once(process.stdout, 'drain', { signal })
}

export function registerIpfs (program: Command): void {
  const ipfs = program.command('ipfs').description('the embedded IPFS store: add, cat, get, pin, gc (CIDs as Kubo computes them)')

  repoOption(ipfs.command('add'))
    .description('add a file or a folder (recursively) and print its CID')
    .argument('<path>', 'file, folder, or - for stdin', pathValue('path'))
    .option('--cid-version <version>', '0 (Kubo default) or 1 (raw leaves)', parseCidVersion)
    .option('--no-pin', 'do not pin what was added')
    .option('-n, --only-hash', 'only compute the CID: store nothing')
    .action(async (target: string, opts: { cidVersion?: CidVersion, pin: boolean, onlyHash?: boolean }, command: Command) => {
      const stdin = target === '-'
      const info = stdin ? undefined : await stat(target).catch((cause: unknown) => {
        throw ValidationError.field('path', `${target} cannot be read: ${(cause as Error).message}`, { file: target })
      })
      if (info !== undefined && !info.isFile() && !info.isDirectory()) throw ValidationError.field('path', `${target} is not a file or folder`, { file: target })
      await withStore(command, async (store, config, signal) => {
        const reporter = progressReporter(false)
        try {
          const name = stdin ? 'stdin' : path.basename(path.resolve(target))
          const onlyHash = opts.onlyHash === true
          const options = { cidVersion: opts.cidVersion, pin: opts.pin, onlyHash, signal, onProgress: byteProgress(reporter, name) }
          const cid = stdin
            ? await store.put(process.stdin, options)
            : info?.isDirectory() === true ? await store.addDirectory(target, options) : await store.addFile(target, options)
          reporter?.stop()
          if (!onlyHash) await copyToKubo(store, config, cid, { signal, pin: opts.pin })
          process.stdout.write(`${cid.toString()}\n`)
        } finally {
          reporter?.stop()
        }
      })
    })

  repoOption(ipfs.command('cat'))
    .description('write a file\'s content to stdout')
    .argument('<cid>', 'CID, <cid>/path, ipfs://<cid>[/path] or /ipfs/<cid>[/path]')
    .action(async (address: string, _opts: unknown, command: Command) => {
      parseIpfsPath(address) // a ValidationError before the store is opened
      await withContent(command, async (router, _config, interrupt) => {
        // A reader that goes away (`| head`) ends the cat quietly, as it does for Kubo.
        const closed = new AbortController()
        const onError = (err: NodeJS.ErrnoException): void => { if (err.code === 'EPIPE') closed.abort() }
        process.stdout.on('error', onError)
        const signal = AbortSignal.any([interrupt, closed.signal])
        const reporter = progressReporter(false)
        try {
          for await (const chunk of router.cat(address, { signal, onProgress: byteProgress(reporter, address) })) await writeOut(chunk, signal)
        } catch (err) {
          if (!closed.signal.aborted) throw err
        } finally {
          reporter?.stop()
          process.stdout.removeListener('error', onError)
        }
      })
    })

  repoOption(ipfs.command('get'))
    .description('write a file or folder to disk (complete or not at all) and print where')
    .argument('<cid>', 'CID, <cid>/path, ipfs://<cid>[/path] or /ipfs/<cid>[/path]')
    .option('-o, --output <path>', 'where to write it (must not exist; default: ./<cid or last path segment>)', pathValue('output'))
    .action(async (address: string, opts: { output?: string }, command: Command) => {
      const { cid, path: inner } = parseIpfsPath(address)
      const output = path.resolve(opts.output ?? (inner === '' ? cid.toString() : inner.split('/').at(-1) as string))
      checkDestination(output)
      await withContent(command, async (router, _config, signal) => {
        // with network stores configured, the DAG is made local first (one CAR from a gateway), then written
        const target = router.stores.length > 1 ? await router.fetchAll(address, { signal }) : await router.helia.resolve(cid, inner, { signal })
        const reporter = progressReporter(true)
        try {
          await exportUnixfs(router.helia, target, output, { signal, label: address, onProgress: reporter?.onProgress })
        } finally {
          reporter?.stop()
        }
        process.stdout.write(`${output}\n`)
      })
    })

  const pin = repoOption(ipfs.command('pin'))
    .description('pin content (fetched first through the configured stores when not here; kept through gc); see also pin ls, pin rm')
    .argument('<cid>', 'CID or <cid>/path to pin (a path pins what it names)')
    .action(async (value: string, _opts: unknown, command: Command) => {
      await pinCommand(value, command)
    })
  repoOption(pin.command('add'))
    .description('pin content (fetched first through the configured stores when not here)')
    .argument('<cid>', 'CID or <cid>/path to pin (a path pins what it names)')
    .action(async (value: string, _opts: unknown, command: Command) => {
      await pinCommand(value, command)
    })
  repoOption(pin.command('ls'))
    .description('list pinned root CIDs')
    .action(async (_opts: unknown, command: Command) => {
      await withStore(command, async (store, _config, signal) => {
        for await (const cid of store.pins({ signal })) process.stdout.write(`${cid.toString()}\n`)
      })
    })
  repoOption(pin.command('rm'))
    .description('remove a pin (its blocks go at the next gc unless another pin holds them)')
    .argument('<cid>', 'pinned root CID to unpin (see pin ls)')
    .action(async (value: string, _opts: unknown, command: Command) => {
      const { cid, path: inner } = parseIpfsPath(value)
      await withStore(command, async (store, _config, signal) => {
        // As Kubo, only roots are unpinned: a path is accepted only when it names a pinned root itself.
        const target = inner === '' ? cid : await store.resolve(cid, inner, { signal })
        if (!(await isPinnedRoot(store, target, signal))) {
          if (inner !== '') {
            throw ValidationError.field('cid', `${value} names ${target.toString()}, which is not pinned itself: pin rm takes a pinned root CID (see ipfs pin ls)`, { cid: cid.toString(), path: inner })
          }
          throw new NotFoundError(`${cid.toString()} is not pinned or pinned indirectly (pin rm takes a pinned root CID, see ipfs pin ls)`, { context: { cid: cid.toString() } })
        }
        await store.unpin(target, { signal })
        process.stdout.write(`unpinned ${target.toString()}\n`)
      })
    })

  repoOption(ipfs.command('gc'))
    .description('remove every block no pin holds')
    .action(async (_opts: unknown, command: Command) => {
      await withStore(command, async (store, _config, signal) => {
        const { removed, reclaimedBytes, unreadable } = await store.gc({ signal })
        const reclaimed = reclaimedBytes > 0 ? `, reclaimed ${formatBytes(reclaimedBytes)}` : ''
        process.stdout.write(`removed ${removed} block${removed === 1 ? '' : 's'}${reclaimed}\n`)
        // A pinned block that cannot be read hides what lies below it, so gc removed nothing: say why.
        for (const u of unreadable) {
          process.stderr.write(`cannot read block ${u.cid.toString()} under pin ${u.pin.toString()} (${u.reason}): nothing was removed; add that content again (or unpin it), then run gc again\n`)
        }
        if (unreadable.length > 0) process.exitCode = 1
      })
    })
}

/** `pin <cid[/path]>`: pins what the path names (as Kubo), fetching missing blocks through the stores. */
async function pinCommand (value: string, command: Command): Promise<void> {
  parseIpfsPath(value) // a ValidationError before the store is opened
  await withContent(command, async (router, _config, signal) => {
    const target = await router.resolve(value, '', { signal })
    await router.pin(target, { signal })
    process.stdout.write(`pinned ${target.toString()}\n`)
  })
}
