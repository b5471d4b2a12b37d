import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import os from 'node:os'
import { BACKEND_KEYS, HardwareDetection, type HardwareReport } from '../../src/hardware/index.js'
import { FakeSystem } from './fake-system.js'

describe('HardwareDetection on this machine', () => {
  const detection = new HardwareDetection()
  let report: HardwareReport
  before(() => { report = detection.detectAllHardware() })

  it('returns exactly the eight backend keys', () => {
    assert.deepEqual(Object.keys(report).sort(), [...BACKEND_KEYS].sort())
  })

  it('reports the CPU with the cores this process may use', () => {
    assert.equal(report.cpu.available, true)
    assert.equal(report.cpu.cores, os.availableParallelism())
    assert.equal(report.cpu.arch, process.arch)
    assert.ok(report.cpu.memory_total_bytes > 0)
    assert.match(report.cpu.memory_total, /^\d+(GB|MB)$/)
  })

  it('gives a reason for every unavailable backend', () => {
    for (const key of BACKEND_KEYS) {
      const status = report[key]
      if (!status.available) assert.ok(typeof status.reason === 'string' && status.reason.length > 0, `${key} has no reason`)
      else assert.equal(status.reason, undefined, `${key} is available but has a reason`)
    }
  })

  it('reports webnn unavailable in Node', () => {
    assert.equal(report.webnn.available, false)
  })

  it('reports CUDA as this machine has it', (t) => {
    // This suite also runs on GPU machines; there CUDA is available only with the provider installed.
    if (report.cuda.devices === 0) {
      assert.equal(report.cuda.available, false)
      assert.match(report.cuda.reason ?? '', /no NVIDIA GPU found/)
    } else if (!report.cuda.provider_installed) {
      assert.equal(report.cuda.available, false)
      assert.match(report.cuda.reason ?? '', /ONNXRUNTIME_NODE_INSTALL=cuda12/)
    } else {
      t.diagnostic(`CUDA: ${JSON.stringify(report.cuda)}`)
    }
  })

  it('caches: a second call returns the same frozen object', () => {
    assert.equal(detection.detectAllHardware(), report)
    assert.ok(Object.isFrozen(report) && Object.isFrozen(report.cpu))
  })

  it('is plain JSON', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(report)), report)
  })

  it('gives the same answer asynchronously', async () => {
    const viaAsync = await new HardwareDetection().detectAllHardwareAsync()
    assert.deepEqual(viaAsync, report)
  })
})

describe('HardwareDetection caching', () => {
  let sys: FakeSystem
  before(async () => { sys = await FakeSystem.create() })
  after(async () => { await sys.cleanup() })

  it('probes again only after refresh()', async () => {
    const detection = new HardwareDetection({ environment: sys.environment() })
    const first = detection.detectAllHardware()
    assert.equal(first.cuda.devices, 0)
    await sys.printingTool('nvidia-smi', 'NVIDIA L4, 23034, 550.54.15')
    assert.equal(detection.detectAllHardware(), first)
    assert.equal(await detection.detectAllHardwareAsync(), first)
    detection.refresh()
    const second = await detection.detectAllHardwareAsync()
    assert.notEqual(second, first)
    assert.equal(second.cuda.devices, 1)
    assert.equal(second.cuda.gpus[0].name, 'NVIDIA L4')
  })

  it('shares one asynchronous detection between concurrent callers', async () => {
    const detection = new HardwareDetection({ environment: sys.environment() })
    const [a, b] = await Promise.all([detection.detectAllHardwareAsync(), detection.detectAllHardwareAsync()])
    assert.equal(a, b)
    assert.deepEqual(detection.detectAllHardware(), a)
  })
})
