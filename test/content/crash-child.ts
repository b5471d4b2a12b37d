/**
 * Child process for the crash tests (crash-*.test.ts): does one operation on a repository and reports
 * its progress on stdout, one line at a time, so the parent can SIGKILL it at a chosen point.
 *
 *   add <repo> <size> <seed>         HeliaStore.put of seeded bytes: 'progress <bytes>', 'done <cid>'
 *   add-hold <repo> <size> <seed>    the same with index writes slowed down; 'done <cid>', then waits
 *   gc <repo>                        'ready', then gc: 'done <removed>'
 *   publish <repo> <folder>          publishModel: 'progress <bytes>', 'done <cid>'
 *   pull <repo> <cid> <cacheDir>     pullModel: 'progress <bytes>', 'done <dir>'
 *   lock <repo>                      opens the store: 'locked' or 'refused <error name>', then waits for stdin to end
 */
import path from 'node:path'
import { HeliaStore } from '../../src/content/helia-store.js'
import { publishModel, pullModel } from '../../src/content/model-pack.js'
import { seededChunks } from './seeded-bytes.js'
import { injectFaults } from './fault-fs.js'

const [op, repo, ...args] = process.argv.slice(2)
const say = (line: string): void => { process.stdout.write(line + '\n') }
const hang = async (): Promise<void> => await new Promise(() => setInterval(() => {}, 1 << 30))

const store = new HeliaStore({ repo })
switch (op) {
  case 'add':
  case 'add-hold': {
    if (op === 'add-hold') {
      // a slow disk under the pack index: its writes lag the pins' datastore writes
      const index = path.join(path.resolve(repo), 'packs', 'index')
      await injectFaults(({ op, file }) => op === 'write' && file === index ? { delayMs: 300 } : undefined)
    }
    const cid = await store.put((async function * () { yield * seededChunks(Number(args[0]), Number(args[1]), 1 << 20) })(), {
      onProgress: ({ bytes }) => { say(`progress ${bytes}`) }
    })
    say(`done ${cid.toString()}`)
    if (op === 'add-hold') await hang()
    break
  }
  case 'gc': {
    await store.open()
    say('ready')
    say(`done ${(await store.gc()).removed}`)
    break
  }
  case 'publish': {
    const { cid } = await publishModel(store, args[0], { onProgress: e => { say(`progress ${e.modelLoaded}`) } })
    say(`done ${cid}`)
    break
  }
  case 'pull': {
    const { dir } = await pullModel(store, args[0], { cacheDir: args[1], onProgress: e => { say(`progress ${e.modelLoaded}`) } })
    say(`done ${dir}`)
    break
  }
  case 'lock': {
    try {
      await store.open()
      say('locked')
    } catch (err) {
      say(`refused ${(err as Error).name}`)
    }
    process.stdin.resume()
    await new Promise(resolve => process.stdin.once('end', resolve))
    break
  }
  default:
    throw new Error(`unknown op ${op}`)
}
await store.stop()
