import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { hardwareSchema, type HardwareConfig } from '../../src/config/schema.js'
import { HardwareError, ModelLoadError } from '../../src/errors.js'
import { createLogger, type Logger } from '../../src/logging/logger.js'
import { backendOrder, fallbackLevel, HardwareDetection, selectExecution, type HardwareReport } from '../../src/hardware/index.js'

/** A machine with only a CPU: the report data a detection gives on such a machine. */
function cpuOnly (over: Partial<HardwareReport> = {}): HardwareReport {
  const unavailable = { available: false as const }
  return {
    cpu: { available: true, cores: 4, model: 'Test CPU', arch: 'x64', memory_total: '16GB', memory_total_bytes: 16 * 2 ** 30, simd: { avx2: true }, provider: 'cpu' },
    cuda: { ...unavailable, reason: 'no NVIDIA GPU found (nvidia-smi not found on PATH)', devices: 0, gpus: [], provider_installed: false, provider: 'cuda' },
    openvino: { ...unavailable, reason: 'no OpenVINO toolkit found', provider_installed: false, provider: 'openvino' },
    mps: { ...unavailable, reason: 'needs macOS on Apple silicon', provider: 'coreml', provider_installed: false },
    rocm: { ...unavailable, reason: '/dev/kfd is absent', devices: 0, gpus: [], provider_installed: false },
    qualcomm: { ...unavailable, reason: 'needs arm64', provider_installed: false, provider: 'qnn' },
    webnn: { ...unavailable, reason: 'browsers only', provider: 'webnn' },
    webgpu: { ...unavailable, reason: 'no adapter', provider: 'webgpu', probe: 'onnxruntime-session' },
    ...over
  }
}

const WITH_CUDA = cpuOnly({
  cuda: { available: true, devices: 1, memory: '24GB', gpus: [{ index: 0, name: 'NVIDIA L4', memory: '24GB' }], provider_installed: true, provider: 'cuda' }
})

function config (init: Record<string, unknown> = {}): HardwareConfig {
  return hardwareSchema.parse(init)
}

/** A pino logger writing JSON lines to an array. */
function capturingLogger (): { logger: Logger, lines: Array<{ level: number, msg: string }> } {
  const lines: Array<{ level: number, msg: string }> = []
  const logger = createLogger({ level: 'DEBUG' }, { write: (s: string) => { lines.push(JSON.parse(s)) } })
  return { logger, lines }
}

describe('selectExecution: devices', () => {
  it('walks backends in order: CUDA first when preferred, CPU last', () => {
    assert.deepEqual(backendOrder(config({ prefer_cuda: true, allow_webgpu: true })), ['cuda', 'rocm', 'openvino', 'mps', 'webgpu', 'cpu'])
    assert.deepEqual(backendOrder(config({ prefer_cuda: false, allow_openvino: false, allow_qualcomm: true })), ['rocm', 'mps', 'qualcomm', 'cuda', 'cpu'])
  })

  it('prefer_cuda without a GPU falls back to CPU and logs why', () => {
    const { logger, lines } = capturingLogger()
    const choice = selectExecution(cpuOnly(), config({ prefer_cuda: true }), { model: 'org/bert' }, logger)
    assert.equal(choice.backend, 'cpu')
    assert.equal(choice.device, 'cpu')
    assert.deepEqual(choice.executionProviders, ['cpu'])
    assert.deepEqual(choice.fallbacks.map(f => f.device), ['cuda', 'rocm', 'openvino', 'mps'])
    assert.match(choice.fallbacks[0].reason, /cuda skipped: no NVIDIA GPU found/)
    const warning = lines.find(l => l.level === 40)
    assert.ok(warning !== undefined, 'a warning is logged')
    assert.match(warning.msg, /model org\/bert: running on cpu; cuda skipped: no NVIDIA GPU found/)
  })

  it('logs absent optional accelerators at debug only', () => {
    const { logger, lines } = capturingLogger()
    const choice = selectExecution(cpuOnly(), config({ prefer_cuda: false }), { model: 'org/bert' }, logger)
    assert.equal(choice.backend, 'cpu')
    assert.deepEqual(choice.fallbacks.map(f => f.device), ['rocm', 'openvino', 'mps', 'cuda'])
    assert.ok(lines.length > 0)
    assert.ok(lines.every(l => l.level === 20), JSON.stringify(lines))
  })

  it('fallbackLevel: a missing preferred CUDA warns, other skipped backends are debug, a replaced dtype is info', () => {
    assert.equal(fallbackLevel({ device: 'cuda', reason: 'cuda skipped' }, { prefer_cuda: true }), 'warn')
    assert.equal(fallbackLevel({ device: 'cuda', reason: 'cuda skipped' }, { prefer_cuda: false }), 'debug')
    assert.equal(fallbackLevel({ device: 'rocm', reason: 'rocm skipped' }, { prefer_cuda: true }), 'debug')
    assert.equal(fallbackLevel({ dtype: 'fp32', reason: 'no fp16 weights' }, { prefer_cuda: true }), 'info')
  })

  it('uses the real report of this machine', () => {
    const report = new HardwareDetection().detectAllHardware()
    const choice = selectExecution(report, config())
    assert.equal(report[choice.backend].available, true)
    assert.equal(choice.sessionOptions.intraOpNumThreads, report.cpu.cores)
  })

  it('picks CUDA when it is available', () => {
    const choice = selectExecution(WITH_CUDA, config({ prefer_cuda: true }))
    assert.equal(choice.device, 'cuda')
    assert.deepEqual(choice.executionProviders, ['cuda', 'cpu'])
    assert.deepEqual(choice.fallbacks, [])
  })

  it('a strict device that is missing throws HardwareError saying why', () => {
    assert.throws(() => selectExecution(cpuOnly(), config({ device: 'cuda' })), (err: unknown) => {
      assert.ok(err instanceof HardwareError)
      assert.match(err.message, /hardware\.device is "cuda" but cuda is not available: no NVIDIA GPU found/)
      assert.equal(err.context.field, 'hardware.device')
      return true
    })
    assert.throws(() => selectExecution(cpuOnly(), config(), { device: 'mps', model: 'm' }), /model m: device is "mps" but mps is not available/)
  })

  it('a strict device that exists is used, and coreml names the mps backend', () => {
    assert.equal(selectExecution(WITH_CUDA, config({ device: 'cpu', prefer_cuda: true })).device, 'cpu')
    const mac = cpuOnly({ mps: { available: true, provider: 'coreml', provider_installed: true, chip: 'Apple M2' } })
    const choice = selectExecution(mac, config({ device: 'coreml' }))
    assert.equal(choice.backend, 'mps')
    assert.equal(choice.device, 'coreml')
  })

  it('routes backends transformers.js does not name through executionProviders', () => {
    const amd = cpuOnly({ rocm: { available: true, devices: 1, gpus: [{ index: 0, name: 'MI210' }], provider: 'migraphx', provider_installed: true } })
    const choice = selectExecution(amd, config())
    assert.equal(choice.backend, 'rocm')
    assert.equal(choice.device, 'cpu')
    assert.deepEqual(choice.executionProviders, ['migraphx', 'cpu'])
  })

  it('takes threads from hardware.threads, else the core count', () => {
    assert.equal(selectExecution(cpuOnly(), config({ threads: 2 })).sessionOptions.intraOpNumThreads, 2)
    assert.equal(selectExecution(cpuOnly(), config()).sessionOptions.intraOpNumThreads, 4)
  })

  it('throws HardwareError listing every attempt when nothing can run', () => {
    const broken = cpuOnly({ cpu: { ...cpuOnly().cpu, available: false, reason: 'onnxruntime-node could not be loaded' } })
    assert.throws(() => selectExecution(broken, config()), (err: unknown) => {
      assert.ok(err instanceof HardwareError)
      assert.match(err.message, /no backend can run models here: .*cpu skipped: onnxruntime-node could not be loaded/)
      return true
    })
  })
})

describe('selectExecution: dtypes', () => {
  it('maps precisions to transformers.js dtypes', () => {
    for (const [precision, dtype] of [['fp32', 'fp32'], ['int8', 'int8'], ['q8', 'q8'], ['uint8', 'uint8'], ['q4', 'q4'], ['bnb4', 'bnb4']] as const) {
      assert.equal(selectExecution(cpuOnly(), config({ precision })).dtype, dtype)
    }
    assert.equal(selectExecution(WITH_CUDA, config({ precision: 'fp16' })).dtype, 'fp16')
  })

  it('fp16 on CPU becomes fp32 with a logged reason, unless the model asks for it', () => {
    const { logger, lines } = capturingLogger()
    const choice = selectExecution(cpuOnly(), config({ precision: 'fp16' }), { availableDtypes: ['fp32', 'fp16'] }, logger)
    assert.equal(choice.dtype, 'fp32')
    assert.match(choice.fallbacks.find(f => f.dtype !== undefined)?.reason ?? '', /fp16 on CPU runs slower than fp32/)
    assert.ok(lines.some(l => /fp16 on CPU/.test(l.msg)))
    assert.equal(selectExecution(cpuOnly(), config(), { precision: 'fp16', availableDtypes: ['fp32', 'fp16'] }).dtype, 'fp16')
  })

  it('mixed_precision on a GPU means fp16 weights when the model has them', () => {
    assert.equal(selectExecution(WITH_CUDA, config({ mixed_precision: true }), { availableDtypes: ['fp32', 'fp16'] }).dtype, 'fp16')
    const without = selectExecution(WITH_CUDA, config({ mixed_precision: true }), { availableDtypes: ['fp32'] })
    assert.equal(without.dtype, 'fp32')
    assert.match(without.fallbacks[0].reason, /no fp16 weights \(model_fp16\.onnx\); using fp32/)
    assert.equal(selectExecution(cpuOnly(), config({ mixed_precision: true }), { availableDtypes: ['fp32', 'fp16'] }).dtype, 'fp32')
  })

  it('a missing variant is an explained fallback', () => {
    const { logger, lines } = capturingLogger()
    const choice = selectExecution(WITH_CUDA, config({ precision: 'fp16' }), { availableDtypes: ['fp32', 'q8'], model: 'org/bert' }, logger)
    assert.equal(choice.dtype, 'fp32')
    assert.deepEqual(choice.fallbacks, [{ dtype: 'fp32', reason: 'the model has no fp16 weights (model_fp16.onnx); using fp32' }])
    assert.ok(lines.some(l => l.msg === 'model org/bert: the model has no fp16 weights (model_fp16.onnx); using fp32'))
    // int8 is served by the _quantized file when there is no _int8 one.
    assert.equal(selectExecution(cpuOnly(), config({ precision: 'int8' }), { availableDtypes: ['fp32', 'q8'] }).dtype, 'q8')
  })

  it('throws ModelLoadError when no weight file fits', () => {
    assert.throws(() => selectExecution(cpuOnly(), config({ precision: 'fp32' }), { availableDtypes: ['q8', 'q4'], model: 'org/tiny' }), (err: unknown) => {
      assert.ok(err instanceof ModelLoadError)
      assert.match(err.message, /model org\/tiny: no weight file fits precision fp32: the model has q8 \(model_quantized\.onnx\), q4 \(model_q4\.onnx\); acceptable: fp32, fp16/)
      assert.deepEqual(err.context.available, ['q8', 'q4'])
      return true
    })
    assert.throws(() => selectExecution(cpuOnly(), config(), { availableDtypes: [] }), /the model has no weight files/)
  })
})
