/**
 * `ipfs-accelerate demo`: the main job until the server exists. Builds the six tiny models, runs one
 * inference per model family through the seed's calls, and prints the seed-shaped results. Needs no
 * network and no daemon.
 */
import type { Command } from 'commander'
import { mkdtemp, rm, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { buildTinyModel } from '../../models/tiny/index.js'
import { encodeWav } from '../../inference/audio/wav.js'
import type { IpfsAccelerate } from '../../accelerator.js'
import { acceleratorFrom } from '../config-option.js'
import { pathValue } from '../path-value.js'

/** Long number lists are cut for the terminal: the first few values and the length. */
function brief (value: unknown): unknown {
  if (Array.isArray(value)) {
    if (value.length > 6 && value.every(v => typeof v === 'number')) return [...value.slice(0, 4).map(v => Number((v as number).toFixed(4))), `... (${value.length} values)`]
    return value.map(brief)
  }
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, brief(v)]))
  return value
}

function sine (seconds: number, rate: number, hz: number): Float32Array {
  return Float32Array.from({ length: Math.round(seconds * rate) }, (_, i) => 0.5 * Math.sin(2 * Math.PI * hz * i / rate))
}

export async function runDemo (acc: IpfsAccelerate, root: string, print: (title: string, value: unknown) => void): Promise<void> {
  const dir = (name: string): string => join(root, name)
  await Promise.all((['bert', 'gpt2', 'vit', 'clip', 'whisper', 'wav2vec2'] as const).map(async f => await buildTinyModel(f, dir(f))))
  print('hardware', acc.hardwareDetection.detectAllHardware())
  print('initEndpoints', await acc.initEndpoints([dir('bert'), dir('gpt2')]))
  // The seed's own example, through the synchronous call.
  print('text_embedding (process)', acc.process(dir('bert'), { input_ids: [101, 2054, 2003, 102] }, 'text_embedding'))
  print('text_generation', await acc.processAsync(dir('gpt2'), { prompt: 'The future of AI is', max_new_tokens: 8 }, 'text_generation'))
  const pixels = { data: new Float32Array(3 * 224 * 224).map((_, i) => Math.sin(i) * 0.5), dims: [1, 3, 224, 224] }
  print('image_classification', await acc.processAsync(dir('vit'), { pixel_values: pixels }, 'image_classification'))
  const clip = JSON.parse(await readFile(join(dir('clip'), 'config.json'), 'utf8')) as { vision_config: { image_size: number } }
  const size = clip.vision_config.image_size
  const clipPixels = { data: new Float32Array(3 * size * size).map((_, i) => Math.cos(i) * 0.5), dims: [1, 3, size, size] }
  print('multimodal (CLIP)', await acc.processAsync(dir('clip'), { pixel_values: clipPixels, candidate_labels: ['a cat', 'a dog', 'a car'] }, 'zero_shot_image_classification'))
  print('audio_transcription (whisper)', await acc.processAsync(dir('whisper'), { input_values: sine(1, 16_000, 440), sampling_rate: 16_000 }, 'audio_transcription'))
  print('audio_transcription (wav2vec2, WAV at 44.1 kHz)', await acc.processAsync(dir('wav2vec2'), { audio: encodeWav(sine(1, 44_100, 440), 44_100) }, 'audio_transcription'))
  // Content addressing: a model published as one CID runs by that CID; results live in IPFS too.
  const published = await acc.publishModel(dir('bert'))
  print('publishModel (bert)', { cid: published.cid, files: published.manifest.files.length, task: published.manifest.task })
  print(`accelerateInference (ipfs://${published.cid})`, await acc.accelerateInference(`ipfs://${published.cid}`, { input_ids: [101, 2054, 2003, 102] }, true))
  const cid = await acc.storeToIpfs(new TextEncoder().encode(JSON.stringify({ model: 'bert', result: [0.1, 0.2, 0.3] })))
  print('storeToIpfs / queryIpfs', { cid, bytes: new TextDecoder().decode(await acc.queryIpfs(cid)) })
}

export function registerDemo (program: Command): void {
  program.command('demo')
    .description('build the tiny built-in models and run one inference per model family (offline)')
    .option('--keep <dir>', 'write the models here and keep them (default: a temporary folder)', pathValue('keep'))
    .action(async (opts: { keep?: string }, command: Command) => {
      // absolute: a relative `--keep .` would make `join(root, 'gpt2')` the hub id `gpt2`, not this folder
      const root = opts.keep !== undefined ? resolve(opts.keep) : await mkdtemp(join(tmpdir(), 'ipfs-accelerate-demo-'))
      // The demo keeps its IPFS repository and model cache in its own (temporary) folder.
      const acc = acceleratorFrom(command, { logging: { level: 'WARNING' }, ipfs: { repo: join(root, 'ipfs') }, hub: { cache_dir: join(root, 'cache') } })
      try {
        await runDemo(acc, root, (title, value) => {
          process.stdout.write(`\n== ${title}\n${JSON.stringify(brief(value), null, 2)}\n`)
        })
      } finally {
        await acc.stop()
        if (opts.keep === undefined) await rm(root, { recursive: true, force: true })
      }
    })
}
