/**
 * `ipfs-accelerate models publish | pull | ls`: models as IPFS content (see content/model-pack.ts).
 *
 *   models publish <folder|id>   a folder, or a hub id / alias (downloaded first), published as a pack;
 *                                prints the CID
 *   models pull <cid>            fetches the pack (through the configured stores, as the API does) into
 *                                the model cache; prints the folder
 *   models ls [--json]           packs pinned in the store and pulled into the cache
 *
 * The model cache root is `--cache-dir`, else `resources.models[…].cache_dir` of an entry naming the
 * model, else `hub.cache_dir`, else `$IPFS_ACCELERATE_HOME/models` or `~/.cache/ipfs-accelerate/models`.
 */
import { statSync } from 'node:fs'
import path from 'node:path'
import type { Command } from 'commander'
import type { CID } from 'multiformats/cid'
import { ValidationError } from '../../errors.js'
import type { ModelConfig, ResolvedConfig } from '../../config/schema.js'
import { parseCid, parseIpfsPath } from '../../content/cid.js'
import { defaultPackCacheDir, isPulled, listModels, publishModel, pullModel, type ModelPackEntry } from '../../content/model-pack.js'
import { checkFolderPath } from '../../content/unixfs-export.js'
import { downloadModel } from '../../models/hub-download.js'
import { expandHome, modelSource, parseModelReference } from '../../models/model-reference.js'
import { formatBytes } from '../../config/units.js'
import { copyToKubo, parseCidVersion, progressReporter, repoOption, withContent, withStore } from './ipfs.js'
import type { CidVersion } from '../../content/unixfs-layout.js'
import { pathValue } from '../path-value.js'

/** The model cache root for a model whose config entry is `entry` (see the module comment). */
function cacheDirFor (config: ResolvedConfig, override: string | undefined, entry?: ModelConfig): string {
  const dir = override ?? entry?.cache_dir ?? config.hub.cache_dir
  return dir === undefined ? defaultPackCacheDir() : path.resolve(expandHome(dir))
}

/** The `resources.models` entry whose key or source names pack `cid`, if any. */
function entryForCid (config: ResolvedConfig, cid: CID): ModelConfig | undefined {
  const same = (value: string | undefined): boolean => {
    if (value === undefined) return false
    try {
      return parseCid(value).toV1().equals(cid.toV1())
    } catch {
      return false
    }
  }
  return Object.entries(config.models).find(([key, entry]) => same(key) || same(entry.source))?.[1]
}

function isFolder (value: string): boolean {
  try {
    return statSync(value).isDirectory()
  } catch {
    return false
  }
}

function cacheDirOption (command: Command): Command {
  return command.option('--cache-dir <dir>', 'model cache root (default: the model\'s cache_dir, hub.cache_dir, $IPFS_ACCELERATE_HOME/models or ~/.cache/ipfs-accelerate/models)', pathValue('cache-dir'))
}

function totalSize (entry: ModelPackEntry): number {
  return entry.manifest.files.reduce((n, f) => n + f.size, 0)
}

/** Registers `publish`, `pull` and `ls` under the `models` command. */
export function registerModelPackCommands (models: Command): void {
  cacheDirOption(repoOption(models.command('publish')))
    .description('publish a model folder (or a hub id / alias, downloaded first) to the IPFS store as one pinned pack; prints its CID')
    .argument('<model>', 'a model folder, a hub id such as Xenova/bert-base-uncased, or an alias')
    .option('--cid-version <version>', '0 (Kubo default) or 1', parseCidVersion)
    .action(async (model: string, opts: { cidVersion?: CidVersion, repo?: string, cacheDir?: string }, command: Command) => {
      await withStore(command, async (store, config, signal) => {
        let folder: string
        let files: string[] | undefined
        let source: string | undefined
        if (isFolder(model)) {
          folder = model
        } else {
          const ref = parseModelReference(model, config)
          const target = modelSource(ref)
          if (target.kind === 'ipfs') {
            throw ValidationError.field('model', `${model} is already IPFS content (${target.cid}); use \`models pull\` to fetch it`, { model })
          }
          if (target.kind === 'local') {
            if (!isFolder(target.path)) throw ValidationError.field('model', `${target.path} is not a folder`, { model, file: target.path })
            folder = target.path
          } else {
            const reporter = progressReporter(true)
            try {
              const entry = target.config
              const downloaded = await downloadModel(target.repo, {
                revision: target.revision,
                cacheDir: cacheDirFor(config, opts.cacheDir, entry),
                remoteHost: config.hub.remote_host,
                allowRemote: config.hub.allow_remote,
                ...(entry?.precision === undefined ? {} : { dtype: entry.precision }),
                ...(entry?.endpoint_type === undefined || entry.endpoint_type === 'auto' ? {} : { task: entry.endpoint_type }),
                onProgress: reporter?.onProgress,
                signal
              })
              folder = downloaded.dir
              files = downloaded.files
              source = `${target.repo}@${target.revision}`
            } finally {
              reporter?.stop()
            }
          }
        }
        const reporter = progressReporter(false)
        try {
          const { cid } = await publishModel(store, folder, { cidVersion: opts.cidVersion, files, source, signal, onProgress: reporter?.onProgress })
          reporter?.stop()
          await copyToKubo(store, config, parseCid(cid), { signal })
          process.stdout.write(`${cid}\n`)
        } finally {
          reporter?.stop()
        }
      })
    })

  cacheDirOption(repoOption(models.command('pull')))
    .description('fetch a model pack into the local model cache (verified, atomic), pin it and print its folder')
    .argument('<cid>', 'pack CID, ipfs://<cid> or /ipfs/<cid>')
    .action(async (value: string, opts: { cacheDir?: string }, command: Command) => {
      const { cid, path: inner } = parseIpfsPath(value)
      if (inner !== '') {
        throw ValidationError.field('cid', `a model pack is named by its root CID, not a path inside it: ${JSON.stringify(value)} (pull ${cid.toString()})`, { cid: cid.toString(), path: inner })
      }
      // a flag's folder is checked before the store opens (home-expanded, as it will be used)
      if (opts.cacheDir !== undefined) checkFolderPath(path.resolve(expandHome(opts.cacheDir)), 'cache-dir')
      await withContent(command, async (router, config, signal) => {
        const cacheDir = cacheDirFor(config, opts.cacheDir, entryForCid(config, cid))
        if (opts.cacheDir === undefined) checkFolderPath(cacheDir, 'cache-dir')
        const reporter = progressReporter(true)
        try {
          // the pull exports from the embedded store: blocks it lacks come through the other stores first
          // (one CAR from a gateway), not pinned until the pack is complete and checked
          if (router.stores.length > 1 && isPulled(cid, cacheDir) === undefined) await router.fetchAll(cid, { signal })
          const pulled = await pullModel(router.helia, cid, { cacheDir, field: 'cache-dir', signal, onProgress: reporter?.onProgress })
          reporter?.stop()
          process.stdout.write(`${pulled.dir}\n`)
        } finally {
          reporter?.stop()
        }
      })
    })

  cacheDirOption(repoOption(models.command('ls')))
    .description('list model packs pinned in the store or pulled into the cache')
    .option('--json', 'print JSON (cid, pinned, dir, manifest) instead of a table')
    .action(async (opts: { json?: boolean, cacheDir?: string }, command: Command) => {
      await withStore(command, async (store, config, signal) => {
        const entries = await listModels(store, cacheDirFor(config, opts.cacheDir), { signal })
        if (opts.json === true) {
          process.stdout.write(JSON.stringify(entries, null, 2) + '\n')
          return
        }
        for (const e of entries) {
          const state = [e.pinned ? 'pinned' : '', e.dir === undefined ? '' : 'pulled'].filter(s => s !== '').join('+')
          const cells = [e.cid, e.manifest.architecture ?? '?', e.manifest.task ?? '?', e.manifest.precisions.join(',') || '-', formatBytes(totalSize(e)), state, e.dir ?? '']
          process.stdout.write(cells.join('\t').trimEnd() + '\n')
        }
      })
    })
}
