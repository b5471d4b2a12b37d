/**
 * Inputs each task family must read exactly as given (or refuse, naming the field), checked against
 * transformers.js on the same tiny models where it gives a reference.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { AutoModelForCausalLM, AutoTokenizer, env, type Tensor } from '@huggingface/transformers'
import { IpfsAccelerate } from '../../src/accelerator.js'
import { ValidationError } from '../../src/errors.js'
import { encodeWav } from '../../src/inference/audio/wav.js'
import { MAX_IMAGE_BYTES, readImageBytes } from '../../src/inference/inputs/pixel-values.js'
import { MAX_AUDIO_FILE_BYTES } from '../../src/inference/inputs/audio-input.js'
import { MAX_AUDIO_SECONDS } from '../../src/inference/audio/chunks.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { runChildScript } from '../helpers/child-script.js'

/** A [C, H, W] image as nested lists. */
function planes (seed: number, size = 224): number[][][] {
  return [0, 1, 2].map(c => Array.from({ length: size }, (_, y) => Array.from({ length: size }, (_, x) => Math.sin(((c * size + y) * size + x) * 0.001 * seed) * 0.8)))
}

function flat (seed: number, size: number): { data: Float32Array, dims: number[] } {
  return { data: Float32Array.from(planes(seed, size).flat(2)), dims: [1, 3, size, size] }
}

function editJson (file: string, edit: (json: Record<string, unknown>) => void): void {
  const json = JSON.parse(readFileSync(file, 'utf8'))
  edit(json)
  writeFileSync(file, JSON.stringify(json))
}

function isValidation (field: string, pattern?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof ValidationError, String(err))
    assert.equal(err.context.field, field)
    if (pattern !== undefined) assert.match(err.message, pattern)
    return true
  }
}

describe('input handling per task', () => {
  let models: TinyModels
  let acc: IpfsAccelerate

  before(async () => {
    models = await tinyModels(['gpt2', 'vit', 'clip', 'whisper'])
    acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, hardware: { batch_size: 4 }, performance: { enable_caching: false } }, {}, { env: {} })
  })
  after(async () => {
    await acc.stop()
    models.cleanup()
  })

  describe('text_generation', () => {
    it('stops at the eos tokens of generation_config.json, as transformers.js does', async () => {
      const plain = (await acc.processAsync(models.dir('gpt2'), { prompt: 'Hello world', max_new_tokens: 10 }, 'text_generation')).generated_ids as number[]
      // A token the greedy continuation reaches only after a few steps becomes an extra end-of-turn token.
      const stop = plain.find((id, i) => i >= 2 && plain.indexOf(id) === i)
      assert.ok(stop !== undefined)
      const dir = join(models.root, 'gpt2-eot')
      cpSync(models.dir('gpt2'), dir, { recursive: true })
      editJson(join(dir, 'generation_config.json'), g => { g.eos_token_id = [1023, stop] })

      const ours = (await acc.processAsync(dir, { prompt: 'Hello world', max_new_tokens: 10 }, 'text_generation')).generated_ids as number[]
      assert.deepEqual(ours, plain.slice(0, plain.indexOf(stop) + 1))
      env.allowRemoteModels = false
      const tokenizer = await AutoTokenizer.from_pretrained(dir)
      const model = await AutoModelForCausalLM.from_pretrained(dir, { device: 'cpu', dtype: 'fp32' })
      const inputs = tokenizer('Hello world')
      const reference = await model.generate({ ...inputs, max_new_tokens: 10 }) as Tensor
      await model.dispose()
      assert.deepEqual(ours, Array.from(reference.data as BigInt64Array, Number).slice(inputs.input_ids.dims[1]))
    })

    it('keeps left padding out of text', async () => {
      const gpt2 = models.dir('gpt2')
      const bare = await acc.processAsync(gpt2, { input_ids: [5, 6], max_new_tokens: 4 }, 'text_generation')
      const padded = await acc.processAsync(gpt2, { input_ids: [0, 0, 5, 6], attention_mask: [0, 0, 1, 1], max_new_tokens: 4 }, 'text_generation')
      assert.deepEqual(padded.generated_ids, bare.generated_ids)
      assert.equal(padded.text, bare.text)
      assert.equal(padded.text, `&'${String(bare.generated_text)}`)
    })

    it('takes a bare typed array as input_ids, like a bare list', async () => {
      const gpt2 = models.dir('gpt2')
      const list = await acc.processAsync(gpt2, [5, 6], 'text_generation')
      const typed = await acc.processAsync(gpt2, Int32Array.from([5, 6]), 'text_generation')
      assert.deepEqual(typed.generated_ids, list.generated_ids)
    })

    it('names a non-finite token id as it is', async () => {
      await assert.rejects(acc.processAsync(models.dir('gpt2'), { input_ids: [5, Infinity] }, 'text_generation'),
        isValidation('input_ids[1]', /got Infinity$/))
    })
  })

  describe('image inputs', () => {
    it('refuses nested pixel_values with a number where a row belongs; a neighbour in the batch keeps its answer', async () => {
      const vit = models.dir('vit')
      const bad: unknown[][] = planes(1)
      bad[2] = [...bad[2].slice(0, 223), 0.5]
      const alone = await acc.processAsync(vit, { pixel_values: planes(2) }, 'image_classification')
      const [refused, neighbour] = await Promise.allSettled([
        acc.processAsync(vit, { pixel_values: bad }, 'image_classification'),
        acc.processAsync(vit, { pixel_values: planes(2) }, 'image_classification')
      ])
      assert.equal(refused.status, 'rejected')
      isValidation('pixel_values[2][223]', /expected a list of 224/)((refused as PromiseRejectedResult).reason)
      assert.equal(neighbour.status, 'fulfilled')
      assert.deepEqual((neighbour as PromiseFulfilledResult<Record<string, unknown>>).value.logits, alone.logits)
      await assert.rejects(acc.processAsync(vit, { pixel_values: [[[1, 2], [3, [4]]]] }, 'image_classification'), isValidation('pixel_values[0][1][1]'))
      await assert.rejects(acc.processAsync(vit, { pixel_values: [[[]]] }, 'image_classification'), isValidation('pixel_values', /empty dimension/))
    })

    it('never puts images of different sizes into one call (a model whose config has no image_size)', async () => {
      const dir = join(models.root, 'vit-any-size')
      cpSync(models.dir('vit'), dir, { recursive: true })
      editJson(join(dir, 'config.json'), c => { delete c.image_size })
      const alone = await acc.processAsync(dir, { pixel_values: flat(1, 224) }, 'image_classification')
      const [big, small] = await Promise.allSettled([
        acc.processAsync(dir, { pixel_values: flat(1, 224) }, 'image_classification'),
        acc.processAsync(dir, { pixel_values: flat(2, 100) }, 'image_classification')
      ])
      assert.equal(big.status, 'fulfilled')
      assert.deepEqual((big as PromiseFulfilledResult<Record<string, unknown>>).value.logits, alone.logits)
      // The model itself takes only 224 x 224: the small image must fail, not borrow the big one's shape;
      // the graph's fixed input dims say so before onnxruntime runs.
      assert.equal(small.status, 'rejected')
      isValidation('pixel_values')((small as PromiseRejectedResult).reason)
    })

    it('zero-shot scores equal transformers.js\'s pipeline, default template included', async () => {
      const file = join(models.root, 'zero-shot.png')
      const { RawImage, pipeline } = await import('@huggingface/transformers')
      const pixels = Uint8ClampedArray.from({ length: 40 * 30 * 3 }, (_, i) => (i * 37) % 256)
      await new RawImage(pixels, 40, 30, 3).save(file)
      const labels = ['a cat', 'a dog', 'a car']
      const ours = await acc.processAsync(models.dir('clip'), { image: file, candidate_labels: labels }, 'zero_shot_image_classification')
      env.allowRemoteModels = false
      const classifier = await pipeline('zero-shot-image-classification', models.dir('clip'), { device: 'cpu', dtype: 'fp32' })
      const reference = await classifier(await RawImage.read(file), labels) as Array<{ label: string, score: number }>
      await classifier.dispose()
      const ranked = ours.labels as Array<{ label: string, score: number }>
      assert.deepEqual(ranked.map(r => r.label), reference.map(r => r.label))
      ranked.forEach((r, i) => { assert.ok(Math.abs(r.score - reference[i].score) < 1e-5, `${r.label}: ${r.score} vs ${reference[i].score}`) })
    })

    it('refuses an image given twice over, and candidate texts given twice over', async () => {
      const file = join(models.root, 'image.png')
      const { RawImage } = await import('@huggingface/transformers')
      await new RawImage(new Uint8ClampedArray(32 * 32 * 3).fill(90), 32, 32, 3).save(file)
      await assert.rejects(acc.processAsync(models.dir('vit'), { image: file, pixel_values: planes(1) }, 'image_classification'), isValidation('image', /not both/))
      const clip = models.dir('clip')
      await assert.rejects(acc.processAsync(clip, { image: file, pixel_values: planes(1), candidate_labels: ['cat'] }, 'zero_shot_image_classification'), isValidation('image', /not both/))
      await assert.rejects(acc.processAsync(clip, { image: file, candidate_labels: ['cat', 'dog'], input_ids: [[1022, 320, 1023]] }, 'zero_shot_image_classification'), isValidation('input_ids', /not both/))
    })

    it('reads no more of a file than the bound, whatever size it reported (a /proc file says 0)', { skip: process.platform !== 'linux' }, async () => {
      await assert.rejects(readImageBytes('/proc/self/maps', 20_000, 1024), /the image has more than 1024 bytes \(1025 at least\)/)
      assert.ok((await readImageBytes('/proc/self/stat', 20_000, 1024 * 1024)).length > 0, 'a small one is read whole')
    })

    describe('image URLs', () => {
      let server: Server
      let base: string
      let sent = 0
      before(async () => {
        server = createServer((req, res) => {
          if (req.url === '/silent') return // never answers
          if (req.url === '/endless') {
            // an answer that never ends: bytes as fast as the client takes them
            res.writeHead(200, { 'content-type': 'image/png' })
            const pump = (): void => { while (!res.destroyed && res.write(new Uint8Array(64 * 1024))) sent += 64 * 1024; if (!res.destroyed) res.once('drain', pump) }
            pump()
            return
          }
          res.writeHead(200, { 'content-type': 'image/png' })
          res.write(new Uint8Array(16)) // headers and a little body, then nothing more
        })
        await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
        base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      })
      after(() => {
        server.closeAllConnections()
        server.close()
      })

      it('refuses an image over its size limit, from a URL (before reading it all) or a file', async () => {
        await assert.rejects(readImageBytes(`${base}/endless`, 20_000, 1024 * 1024), /the image has more than 1048576 bytes/)
        assert.ok(sent < 64 * 1024 * 1024, `the server got to send ${sent} bytes`)
        const file = join(models.root, 'big-image.bin')
        writeFileSync(file, new Uint8Array(2 * 1024 * 1024))
        await assert.rejects(readImageBytes(file, 20_000, 1024 * 1024), /the image has more than 1048576 bytes \(2097152/)
        assert.equal(MAX_IMAGE_BYTES, 100 * 1024 * 1024)
      })

      it('gives up on a server that does not answer, or stops sending, instead of waiting for minutes', async () => {
        for (const path of ['/silent', '/trickle']) {
          const started = Date.now()
          await assert.rejects(readImageBytes(`${base}${path}`, 300), /no complete response within 0.3 s/)
          assert.ok(Date.now() - started < 5_000, path)
        }
      })
    })
  })

  describe('audio inputs', () => {
    it('refuses samples given twice over, and a sampling_rate that contradicts the WAV header', async () => {
      const whisper = models.dir('whisper')
      const file = join(models.root, 'tone.wav')
      writeFileSync(file, encodeWav(Float32Array.from({ length: 8_000 }, (_, i) => 0.3 * Math.sin(i / 5)), 8_000))
      await assert.rejects(acc.processAsync(whisper, { audio: file, input_values: [0.1, 0.2] }, 'audio_transcription'), isValidation('audio', /not both/))
      await assert.rejects(acc.processAsync(whisper, { audio: file, sampling_rate: 16_000 }, 'audio_transcription'), isValidation('sampling_rate', /WAV file is at 8000 Hz/))
      const same = await acc.processAsync(whisper, { audio: file, sampling_rate: 8_000 }, 'audio_transcription')
      const plain = await acc.processAsync(whisper, { audio: file }, 'audio_transcription')
      assert.equal(same.text, plain.text)
    })

    it('refuses a WAV file over MAX_AUDIO_FILE_BYTES before reading it', async () => {
      // The bound holds two hours (the most a request takes) of 48 kHz stereo 24-bit PCM.
      assert.ok(MAX_AUDIO_FILE_BYTES > MAX_AUDIO_SECONDS * 48_000 * 2 * 3)
      const file = join(models.root, 'huge.wav')
      writeFileSync(file, '')
      truncateSync(file, MAX_AUDIO_FILE_BYTES + 1) // sparse: no disk used
      await assert.rejects(acc.processAsync(models.dir('whisper'), { audio: file }, 'audio_transcription'),
        isValidation('audio', new RegExp(`more than ${MAX_AUDIO_FILE_BYTES} bytes \\(${MAX_AUDIO_FILE_BYTES + 1} at least\\)`)))
    })

    it('transcribes a WAV file longer than Whisper\'s window (in windows), at any rate', async () => {
      const file = join(models.root, 'long.wav')
      writeFileSync(file, encodeWav(new Float32Array(48_000 * 40).fill(0.01), 48_000))
      const long = await acc.processAsync(models.dir('whisper'), { audio: file, max_new_tokens: 2 }, 'audio_transcription')
      assert.equal(typeof long.text, 'string')
      const edge = await acc.processAsync(models.dir('whisper'), { input_values: new Float32Array(8_000 * 31), sampling_rate: 8_000, max_new_tokens: 1 }, 'audio_transcription')
      assert.equal(typeof edge.text, 'string')
    })
  })

  it('an image or WAV path that is not a regular file (a FIFO, a device, a folder) is a ValidationError at once, and stop() still ends', { skip: process.platform !== 'linux' }, () => {
    // Opening a FIFO blocked a thread-pool thread for ever (the call never settled, stop() never ended, the
    // process could not exit) and /dev/zero grew memory without bound: run in a child killed after a
    // minute. The FIFO cases come first: without the fix the child ends there, before /dev/zero.
    const fifo = join(models.root, 'fifo')
    execFileSync('mkfifo', [fifo])
    const script = `
      import { IpfsAccelerate } from './src/index.ts'
      const { vit, whisper, fifo, folder } = JSON.parse(process.env.IA_FILE_CASE)
      const acc = new IpfsAccelerate({ logging: { level: 'SILENT' } }, {}, { env: {} })
      const result = {}
      const outcome = (err) => ({ name: err.name, field: err.context?.field })
      const settle = async (name, call) => {
        // A case stuck for 20 s reports itself and kills the child: a normal exit would wait on the stuck thread.
        const timer = setTimeout(() => { result[name] = 'hang'; process.stdout.write(JSON.stringify(result)); process.kill(process.pid, 'SIGKILL') }, 20_000)
        result[name] = await call().then(() => 'ok', outcome)
        clearTimeout(timer)
      }
      const image = (path) => () => acc.processAsync(vit, { image: path }, 'image_classification')
      const audio = (path) => () => acc.processAsync(whisper, { audio: path }, 'audio_transcription')
      await settle('imageFifo', image(fifo))
      await settle('audioFifo', audio(fifo))
      await settle('imageZero', image('/dev/zero'))
      await settle('audioZero', audio('/dev/zero'))
      await settle('imageRandom', image('/dev/urandom'))
      await settle('audioRandom', audio('/dev/urandom'))
      await settle('imageFolder', image(folder))
      try { acc.process(vit, { image: fifo }, 'image_classification'); result.imageFifoSync = 'ok' } catch (err) { result.imageFifoSync = outcome(err) }
      await settle('stop', () => acc.stop())
      process.stdout.write(JSON.stringify(result))
    `
    const child = runChildScript(script, { IA_FILE_CASE: JSON.stringify({ vit: models.dir('vit'), whisper: models.dir('whisper'), fifo, folder: models.root }) })
    assert.equal(child.status, 0, `child ${child.signal ?? child.status}: ${child.stdout} ${child.stderr}`)
    const image = { name: 'ValidationError', field: 'image' }
    const audio = { name: 'ValidationError', field: 'audio' }
    assert.deepEqual(JSON.parse(child.stdout), {
      imageFifo: image,
      audioFifo: audio,
      imageZero: image,
      audioZero: audio,
      imageRandom: image,
      audioRandom: audio,
      imageFolder: image,
      imageFifoSync: image,
      stop: 'ok'
    })
  })
})
