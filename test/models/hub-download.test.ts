import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { env } from '@huggingface/transformers'
import { startHubServer, type HubServer } from '../helpers/hub-server.js'
import { buildTinyModel } from '../../src/models/tiny/index.js'
import { GraphBuilder } from '../../src/models/tiny/onnx-graph.js'
import {
  cachedModelDir, defaultModelCacheDir, downloadModel, resolveModelCacheDir, withTransformersEnv, type DownloadProgressEvent
} from '../../src/models/hub-download.js'
import { AbortError, ModelLoadError, ValidationError } from '../../src/errors.js'

/** A one-node graph: enough for onnxruntime to open a session on. */
function identityOnnx (input: string, output: string): Uint8Array {
  const g = new GraphBuilder('identity')
  g.op('Identity', [g.input(input, 'float32', ['batch_size', 4])], {}, output)
  g.output(output, 'float32', ['batch_size', 4])
  return g.toBytes()
}

async function writeFiles (dir: string, files: Record<string, string | Uint8Array | object>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, ...name.split('/'))
    await mkdir(join(path, '..'), { recursive: true })
    await writeFile(path, content instanceof Uint8Array || typeof content === 'string' ? content : JSON.stringify(content))
  }
}

/** Files under `dir`, relative, sorted; temporary files would show up here too. */
async function listFiles (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter(e => e.isFile()).map(e => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1)).sort()
}

/** Paths fetched whole (status 200) since request number `from`. */
function fullGets (server: HubServer, from = 0): string[] {
  return server.log.slice(from).filter(e => e.method === 'GET' && e.status === 200).map(e => e.path)
}

describe('hub download', () => {
  let root: string
  let work: string
  let server: HubServer
  const bertDir = (): string => join(root, 'Org', 'tiny-bert')

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hub-root-'))
    work = await mkdtemp(join(tmpdir(), 'hub-cache-'))
    await buildTinyModel('bert', bertDir())
    // A second weight variant, so that dtype decides which file is fetched.
    await copyFile(join(bertDir(), 'onnx', 'model.onnx'), join(bertDir(), 'onnx', 'model_quantized.onnx'))
    await writeFiles(join(root, 'Org', 'tiny-whisper'), {
      'config.json': { architectures: ['WhisperForConditionalGeneration'], model_type: 'whisper', is_encoder_decoder: true, d_model: 4, encoder_layers: 1, decoder_layers: 1, encoder_attention_heads: 1, decoder_attention_heads: 1, vocab_size: 8, num_mel_bins: 4 },
      'preprocessor_config.json': { feature_extractor_type: 'WhisperFeatureExtractor', feature_size: 4, sampling_rate: 16000, hop_length: 160, chunk_length: 30, n_fft: 400, padding_value: 0 },
      'onnx/encoder_model.onnx': identityOnnx('input_features', 'last_hidden_state'),
      'onnx/decoder_model_merged.onnx': identityOnnx('encoder_hidden_states', 'logits'),
      'onnx/model.onnx': identityOnnx('x', 'y')
    })
    await writeFiles(join(root, 'Org', 'no-weights'), { 'config.json': { architectures: ['BertModel'], model_type: 'bert' } })
    await writeFiles(join(root, 'solo'), { 'config.json': { model_type: 'bert' } })
    server = await startHubServer(root, { revision: ['main', 'v1'] })
  })

  after(async () => {
    await server.close()
    await rm(root, { recursive: true, force: true })
    await rm(work, { recursive: true, force: true })
  })

  describe('the stand-in hub', () => {
    it('serves files with Content-Length and ETag, answers ranges and HEAD', async () => {
      const url = `${server.url}Org/tiny-bert/resolve/main/config.json`
      const body = await readFile(join(bertDir(), 'config.json'))
      const full = await fetch(url)
      assert.equal(full.status, 200)
      assert.equal(full.headers.get('content-length'), String(body.length))
      assert.match(full.headers.get('etag') ?? '', /^"[0-9a-f]{64}"$/)
      assert.deepEqual(Buffer.from(await full.arrayBuffer()), body)
      const range = await fetch(url, { headers: { Range: 'bytes=0-0' } })
      assert.equal(range.status, 206)
      assert.equal(range.headers.get('content-range'), `bytes 0-0/${body.length}`)
      assert.equal((await range.arrayBuffer()).byteLength, 1)
      const head = await fetch(url, { method: 'HEAD' })
      assert.equal(head.status, 200)
      assert.equal(head.headers.get('content-length'), String(body.length))
    })

    it('serves un-namespaced repositories', async () => {
      const res = await fetch(`${server.url}solo/resolve/main/config.json`)
      assert.equal(res.status, 200)
      assert.deepEqual(await res.json(), { model_type: 'bert' })
    })

    it('answers 404 with the hub error headers', async () => {
      const cases: Array<[string, string]> = [
        ['Org/tiny-bert/resolve/main/nope.json', 'EntryNotFound'],
        ['Org/absent/resolve/main/config.json', 'RepoNotFound'],
        ['Org/tiny-bert/resolve/v9/config.json', 'RevisionNotFound'],
        ['Org/tiny-bert/resolve/main/..%2F..%2Fetc%2Fpasswd', 'EntryNotFound']
      ]
      for (const [path, code] of cases) {
        const res = await fetch(server.url + path)
        await res.arrayBuffer()
        assert.equal(res.status, 404, path)
        assert.equal(res.headers.get('x-error-code'), code, path)
      }
      assert.ok(server.requests.includes('/Org/absent/resolve/main/config.json'))
    })
  })

  describe('downloadModel', () => {
    it('downloads a model byte for byte, with progress that has totals and reaches done', async () => {
      const cacheDir = join(work, 'bert')
      const envBefore = { remoteHost: env.remoteHost, allowRemoteModels: env.allowRemoteModels, cacheDir: env.cacheDir, fetch: env.fetch }
      const events: DownloadProgressEvent[] = []
      const result = await downloadModel('Org/tiny-bert', { cacheDir, remoteHost: server.url, task: 'text_embedding', onProgress: e => events.push(e) })

      assert.equal(result.dir, join(cacheDir, 'Org', 'tiny-bert'))
      assert.equal(result.cached, false)
      assert.deepEqual(result.files, ['config.json', 'onnx/model.onnx', 'tokenizer.json', 'tokenizer_config.json'])
      for (const file of result.files) {
        assert.deepEqual(await readFile(join(result.dir, file)), await readFile(join(bertDir(), file)), file)
      }
      // Nothing half-written is left behind.
      assert.ok((await listFiles(result.dir)).every(f => !f.includes('.tmp')))

      for (const file of result.files) {
        const mine = events.filter(e => e.file === file)
        assert.deepEqual([...new Set(mine.map(e => e.status))], ['initiate', 'download', 'progress', 'done'], file)
        const size = (await readFile(join(bertDir(), file))).length
        assert.ok(mine.filter(e => e.status === 'progress').every(e => e.total === size && e.loaded <= size), file)
        const done = mine.at(-1)
        assert.equal(done?.status, 'done')
        assert.equal(done?.loaded, size)
        assert.equal(done?.total, size)
        assert.equal(done?.model, 'Org/tiny-bert')
      }
      const last = events.at(-1)
      assert.ok(last !== undefined && last.modelTotal > 0)
      assert.equal(last.modelLoaded, last.modelTotal)
      for (let i = 1; i < events.length; i++) assert.ok(events[i].modelLoaded >= events[i - 1].modelLoaded)

      // transformers.js's global settings are as they were.
      assert.deepEqual({ remoteHost: env.remoteHost, allowRemoteModels: env.allowRemoteModels, cacheDir: env.cacheDir, fetch: env.fetch }, envBefore)
    })

    it('answers a second call from the cache without any request', async () => {
      const cacheDir = join(work, 'bert')
      const before = server.requests.length
      const events: DownloadProgressEvent[] = []
      const again = await downloadModel('Org/tiny-bert', { cacheDir, remoteHost: server.url, task: 'text_embedding', onProgress: e => events.push(e) })
      assert.equal(again.cached, true)
      assert.deepEqual(again.files, ['config.json', 'onnx/model.onnx', 'tokenizer.json', 'tokenizer_config.json'])
      assert.equal(server.requests.length, before)
      assert.equal(events.length, 0)
      // Even with remote downloads switched off.
      assert.equal((await downloadModel('Org/tiny-bert', { cacheDir, remoteHost: server.url, task: 'text_embedding', allowRemote: false })).cached, true)
    })

    it('loads the downloaded folder offline with transformers.js and runs it', async () => {
      const dir = join(work, 'bert', 'Org', 'tiny-bert')
      const output = await withTransformersEnv({ allowRemoteModels: false }, async () => {
        const { pipeline } = await import('@huggingface/transformers')
        const extractor = await pipeline('feature-extraction', dir, { device: 'cpu', dtype: 'fp32' })
        try {
          return await extractor('hello world', { pooling: 'mean', normalize: true })
        } finally {
          await extractor.dispose()
        }
      })
      assert.equal(output.dims.length, 2)
      assert.equal(output.dims[0], 1)
      const values = Array.from(output.data as Float32Array)
      assert.ok(values.every(Number.isFinite))
      assert.ok(Math.abs(Math.hypot(...values) - 1) < 1e-3)
    })

    it('lets dtype pick the weight file, fetching only what is new', async () => {
      const cacheDir = join(work, 'bert')
      const from = server.log.length
      const q8 = await downloadModel('Org/tiny-bert', { cacheDir, remoteHost: server.url, task: 'text_embedding', dtype: 'q8' })
      assert.deepEqual(q8.files, ['config.json', 'onnx/model_quantized.onnx', 'tokenizer.json', 'tokenizer_config.json'])
      assert.deepEqual(fullGets(server, from), ['/Org/tiny-bert/resolve/main/onnx/model_quantized.onnx'])
    })

    it('lets the task decide the files: encoder and decoder for Whisper, and no missing optional file is an error', async () => {
      const result = await downloadModel('Org/tiny-whisper', { cacheDir: join(work, 'whisper'), remoteHost: server.url, task: 'audio_transcription' })
      assert.deepEqual(result.files, ['config.json', 'onnx/decoder_model_merged.onnx', 'onnx/encoder_model.onnx', 'preprocessor_config.json'])
      assert.deepEqual(await listFiles(result.dir), result.files)
      // generation_config.json was asked for and is optional.
      assert.ok(server.requests.includes('/Org/tiny-whisper/resolve/main/generation_config.json'))
    })

    it('infers the task from config.json when none is given', async () => {
      const result = await downloadModel('Org/tiny-whisper', { cacheDir: join(work, 'whisper-auto'), remoteHost: server.url })
      assert.ok(result.files.includes('onnx/encoder_model.onnx'))
      assert.ok(!result.files.includes('onnx/model.onnx'))
    })

    it('downloads other revisions into their own folder', async () => {
      const cacheDir = join(work, 'revisions')
      const result = await downloadModel('Org/tiny-bert', { cacheDir, remoteHost: server.url, revision: 'v1', task: 'text_embedding' })
      assert.equal(result.dir, join(cacheDir, 'Org', 'tiny-bert', 'v1'))
      assert.equal(result.revision, 'v1')
      assert.ok(server.requests.includes('/Org/tiny-bert/resolve/v1/onnx/model.onnx'))
      assert.deepEqual(await readFile(join(result.dir, 'onnx', 'model.onnx')), await readFile(join(bertDir(), 'onnx', 'model.onnx')))
    })

    it('fetches each file once when two calls race for the same model', async () => {
      const cacheDir = join(work, 'race')
      const from = server.log.length
      const [a, b] = await Promise.all([
        downloadModel('Org/tiny-bert', { cacheDir, remoteHost: server.url, task: 'text_embedding' }),
        downloadModel('Org/tiny-bert', { cacheDir, remoteHost: server.url, task: 'text_embedding' })
      ])
      assert.deepEqual(a.files, b.files)
      assert.deepEqual([a.cached, b.cached].sort(), [false, true])
      assert.equal(fullGets(server, from).filter(p => p.endsWith('/onnx/model.onnx')).length, 1)
    })

    it('reports a missing model as ModelLoadError naming config.json and the URL', async () => {
      await assert.rejects(downloadModel('Org/absent', { cacheDir: join(work, 'absent'), remoteHost: server.url }), (err: unknown) => {
        assert.ok(err instanceof ModelLoadError, String(err))
        assert.equal(err.context.model, 'Org/absent')
        assert.equal(err.context.file, 'config.json')
        assert.equal(err.context.url, `${server.url}Org/absent/resolve/main/config.json`)
        assert.match(err.message, /config\.json/)
        assert.match(err.message, /Org\/absent\/resolve\/main\/config\.json/)
        return true
      })
    })

    it('reports missing weights as ModelLoadError naming the ONNX file and the URL', async () => {
      await assert.rejects(downloadModel('Org/no-weights', { cacheDir: join(work, 'no-weights'), remoteHost: server.url }), (err: unknown) => {
        assert.ok(err instanceof ModelLoadError, String(err))
        assert.equal(err.context.file, 'onnx/model.onnx')
        assert.equal(err.context.url, `${server.url}Org/no-weights/resolve/main/onnx/model.onnx`)
        assert.match(err.message, /onnx\/model\.onnx/)
        return true
      })
    })

    it('reports an unreachable host as ModelLoadError with the network error as cause', async () => {
      const closed = await startHubServer(root)
      const url = closed.url
      await closed.close()
      await assert.rejects(downloadModel('Org/tiny-bert', { cacheDir: join(work, 'unreachable'), remoteHost: url }), (err: unknown) => {
        assert.ok(err instanceof ModelLoadError, String(err))
        assert.equal(err.context.file, 'config.json')
        assert.match(err.message, /cannot reach/)
        let cause: unknown = err.cause
        const codes: unknown[] = []
        while (cause instanceof Error) {
          codes.push((cause as NodeJS.ErrnoException).code)
          cause = cause.cause
        }
        assert.ok(codes.includes('ECONNREFUSED'), JSON.stringify(codes))
        return true
      })
    })

    it('refuses to contact the host when remote downloads are off and the model is not cached', async () => {
      const before = server.requests.length
      await assert.rejects(downloadModel('Org/tiny-bert', { cacheDir: join(work, 'offline'), remoteHost: server.url, allowRemote: false }), ModelLoadError)
      assert.equal(server.requests.length, before)
    })

    it('aborts mid-transfer with AbortError and leaves no partial file', async () => {
      const cacheDir = join(work, 'aborted')
      const controller = new AbortController()
      await assert.rejects(downloadModel('Org/tiny-bert', {
        cacheDir,
        remoteHost: server.url,
        task: 'text_embedding',
        signal: controller.signal,
        onProgress: e => { if (e.file === 'onnx/model.onnx' && e.status === 'progress') controller.abort() }
      }), AbortError)
      const left = await listFiles(join(cacheDir, 'Org', 'tiny-bert'))
      assert.ok(!left.includes('onnx/model.onnx'), left.join(', '))
      assert.ok(left.every(f => !f.includes('.tmp')), left.join(', '))
      // A later call completes the download.
      const result = await downloadModel('Org/tiny-bert', { cacheDir, remoteHost: server.url, task: 'text_embedding' })
      assert.ok(result.files.includes('onnx/model.onnx'))
    })

    it('rejects an already aborted signal and malformed ids before any request', async () => {
      const before = server.requests.length
      await assert.rejects(downloadModel('Org/tiny-bert', { cacheDir: join(work, 'x'), remoteHost: server.url, signal: AbortSignal.abort() }), AbortError)
      await assert.rejects(downloadModel('Org/../etc', { cacheDir: join(work, 'x'), remoteHost: server.url }), ValidationError)
      await assert.rejects(downloadModel('Org/tiny-bert', { cacheDir: join(work, 'x'), remoteHost: server.url, revision: '../x' }), ValidationError)
      await assert.rejects(downloadModel('Org/tiny-bert', { cacheDir: join(work, 'x'), remoteHost: 'ftp://example' }), ValidationError)
      assert.equal(server.requests.length, before)
    })
  })

  describe('cache folders', () => {
    it('prefers the model cache_dir, then hub.cache_dir, then ~/.cache/ipfs-accelerate/models', () => {
      assert.equal(defaultModelCacheDir('/home/u', {}), '/home/u/.cache/ipfs-accelerate/models')
      assert.equal(resolveModelCacheDir({}, undefined, '/home/u'), '/home/u/.cache/ipfs-accelerate/models')
      assert.equal(resolveModelCacheDir({ hub: { cache_dir: '/data/hub' } }, undefined, '/home/u'), '/data/hub')
      assert.equal(resolveModelCacheDir({ hub: { cache_dir: '/data/hub' } }, { cache_dir: '~/m' }, '/home/u'), '/home/u/m')
    })

    it('lays folders out like transformers.js does', () => {
      assert.equal(cachedModelDir('/c', 'Org/m'), '/c/Org/m')
      assert.equal(cachedModelDir('/c', 'm', 'v2'), '/c/m/v2')
    })
  })
})
