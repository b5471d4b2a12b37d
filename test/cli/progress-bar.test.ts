import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { createProgressReporter, type TransferProgressEvent } from '../../src/cli/progress-bar.js'

/** A writable that keeps what it was given; `tty` makes it look like a terminal. */
function sink (tty: boolean): Writable & { text: () => string, isTTY?: boolean, columns?: number } {
  const chunks: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      chunks.push(String(chunk))
      callback()
    }
  }) as Writable & { text: () => string, isTTY?: boolean, columns?: number }
  stream.text = () => chunks.join('')
  if (tty) {
    stream.isTTY = true
    stream.columns = 120
  }
  return stream
}

function transfer (model: string, file: string, size: number): TransferProgressEvent[] {
  const half = Math.floor(size / 2)
  return [
    { model, file, status: 'initiate', loaded: 0, total: size },
    { model, file, status: 'download', loaded: 0, total: size },
    { model, file, status: 'progress', loaded: half, total: size },
    { model, file, status: 'progress', loaded: size, total: size },
    { model, file, status: 'done', loaded: size, total: size }
  ]
}

describe('progress reporter', () => {
  it('writes one plain line per finished file when the stream is not a terminal', () => {
    const out = sink(false)
    const reporter = createProgressReporter(out)
    for (const e of [...transfer('Org/m', 'config.json', 561), ...transfer('Org/m', 'onnx/model.onnx', 3 * 1024 * 1024)]) reporter.onProgress(e)
    // A repeated done is not a second line.
    reporter.onProgress({ model: 'Org/m', file: 'config.json', status: 'done', loaded: 561, total: 561 })
    reporter.stop()
    assert.equal(out.text(), 'downloaded Org/m/config.json (561 B)\ndownloaded Org/m/onnx/model.onnx (3.0 MiB)\n')
    assert.doesNotMatch(out.text(), /\u001b\[/)
  })

  it('adds the model total in aggregate mode', () => {
    const out = sink(false)
    const reporter = createProgressReporter(out, { mode: 'aggregate' })
    reporter.onProgress({ model: 'Org/m', file: 'a.bin', status: 'done', loaded: 1024, total: 1024, modelLoaded: 1024, modelTotal: 2048 })
    reporter.stop()
    assert.equal(out.text(), 'downloaded Org/m/a.bin (1.0 KiB) [1.0 KiB/2.0 KiB of Org/m]\n')
  })

  it('draws a bar per file on a terminal and leaves them complete', () => {
    const out = sink(true)
    const reporter = createProgressReporter(out)
    for (const e of [...transfer('Org/m', 'config.json', 561), ...transfer('Org/m', 'onnx/model.onnx', 4096)]) reporter.onProgress(e)
    reporter.stop()
    reporter.stop()
    const text = out.text()
    assert.match(text, /Org\/m\/config\.json/)
    assert.match(text, /Org\/m\/onnx\/model\.onnx/)
    assert.match(text, /100% \| 4\.0 KiB\/4\.0 KiB/)
    assert.match(text, /100% \| 561 B\/561 B/)
    // Events after stop are ignored.
    const length = text.length
    reporter.onProgress({ model: 'Org/m', file: 'late.json', status: 'done', loaded: 1, total: 1 })
    assert.equal(out.text().length, length)
  })

  it('draws one bar per model in aggregate mode, growing with unknown sizes', () => {
    const out = sink(true)
    const reporter = createProgressReporter(out, { mode: 'aggregate' })
    reporter.onProgress({ model: 'Org/m', file: 'a', status: 'progress', loaded: 10, total: 0, modelLoaded: 10, modelTotal: 0 })
    reporter.onProgress({ model: 'Org/m', file: 'a', status: 'done', loaded: 2048, total: 2048, modelLoaded: 2048, modelTotal: 2048 })
    reporter.stop()
    const text = out.text()
    assert.match(text, /Org\/m\s+\[/)
    assert.match(text, /100% \| 2\.0 KiB\/2\.0 KiB/)
    assert.doesNotMatch(text, /Org\/m\/a/)
  })
})
