import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs, { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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

  it('says nothing about files found in a cache: no line, no bar', () => {
    const plain = sink(false)
    const lines = createProgressReporter(plain)
    lines.onProgress({ model: 'Org/m', file: 'config.json', status: 'cached', loaded: 561, total: 561 })
    for (const e of transfer('Org/m', 'onnx/model.onnx', 4096)) lines.onProgress(e)
    lines.stop()
    assert.equal(plain.text(), 'downloaded Org/m/onnx/model.onnx (4.0 KiB)\n')

    const tty = sink(true)
    const bars = createProgressReporter(tty)
    bars.onProgress({ model: 'Org/m', file: 'config.json', status: 'cached', loaded: 561, total: 561 })
    for (const e of transfer('Org/m', 'onnx/model.onnx', 4096)) bars.onProgress(e)
    bars.stop()
    assert.doesNotMatch(tty.text(), /config\.json/)
    assert.match(tty.text(), /onnx\/model\.onnx/)
  })

  it('prints other output to the stream above live bars, then redraws them', () => {
    const out = sink(true)
    const reporter = createProgressReporter(out)
    after(() => { reporter.stop() })
    const [initiate, download, half] = transfer('Org/m', 'onnx/model.onnx', 4096)
    // Before any bar, writes go straight through.
    out.write('before\n')
    for (const e of [initiate, download, half]) reporter.onProgress(e)
    const drawn = out.text().length
    out.write('{"level":40,"msg":"a log line"}\n')
    const tail = out.text().slice(drawn)
    // From the top of the bars: the line (with wrapping back on), then the bar again below it.
    const log = tail.indexOf('{"level":40,"msg":"a log line"}\n')
    assert.ok(log >= 0, JSON.stringify(tail))
    assert.match(tail.slice(0, log), /\u001b\[\?7h$/)
    assert.match(tail.slice(log), /Org\/m\/onnx\/model\.onnx .*50%/)
    // A partial line waits for its end.
    out.write('part')
    assert.doesNotMatch(out.text().slice(drawn), /part/)
    out.write('ial\n')
    assert.match(out.text().slice(drawn), /partial\n/)
    reporter.stop()
    // After stop, writes go straight through again.
    const stopped = out.text().length
    out.write('after\n')
    assert.equal(out.text().slice(stopped), 'after\n')
    assert.match(out.text(), /^before\n/)
  })

  it('a second reporter made while another captures draws with the stream itself, never through the first', () => {
    const out = sink(true)
    const ev = (model: string, loaded: number, status: TransferProgressEvent['status'] = 'progress'): TransferProgressEvent => ({ model, file: `${model}.bin`, status, loaded, total: 100 })
    const a = createProgressReporter(out)
    a.onProgress(ev('A', 10))
    const b = createProgressReporter(out)
    b.onProgress(ev('B', 10))
    a.stop()
    const mark = out.text().length
    b.onProgress(ev('B', 100, 'done'))
    b.stop()
    const tail = out.text().slice(mark)
    assert.match(tail, /B\/B\.bin.*100%/, 'the second bar finishes')
    assert.doesNotMatch(tail, /A\/A\.bin/, 'the first bar is not drawn again after its stop')
    const all = out.text()
    assert.ok(all.lastIndexOf('\u001b[?7h') > all.lastIndexOf('\u001b[?7l'), 'line wrapping is left on')
    assert.equal(Object.prototype.hasOwnProperty.call(out, 'write'), false, 'the stream\'s write is restored')
  })

  it('also catches direct writes to the stream\'s file descriptor (how the logger writes)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'progress-fd-'))
    const file = join(dir, 'fd.txt')
    const fd = openSync(file, 'w')
    try {
      const out = Object.assign(sink(true), { fd })
      const reporter = createProgressReporter(out)
      try {
        for (const e of transfer('Org/m', 'a.bin', 2048).slice(0, 3)) reporter.onProgress(e)
        // pino's destination calls fs.writeSync through the fs module object, as here.
        fs.writeSync(fd, 'logged while drawing\n')
        fs.writeSync(fd, Buffer.from('as bytes\n'))
        assert.match(out.text(), /logged while drawing\n/)
        assert.match(out.text(), /as bytes\n/)
      } finally {
        reporter.stop()
      }
      fs.writeSync(fd, 'logged after\n')
      assert.equal(readFileSync(file, 'utf8'), 'logged after\n')
    } finally {
      closeSync(fd)
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
