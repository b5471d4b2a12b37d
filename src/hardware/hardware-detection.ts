/**
 * Finds out, once, which backends can run models on this machine. Every probe is real (a vendor tool, a
 * driver file, an onnxruntime session started in a child process) and time-bounded; the report is cached
 * until `refresh()`.
 */
import type { Logger } from '../logging/logger.js'
import { silentLogger } from '../logging/logger.js'
import { ValidationError } from '../errors.js'
import { BACKEND_KEYS, type HardwareReport } from './hardware-report.js'
import { DEFAULT_PROBE_TIMEOUTS, type Probe, type ProbeContext, type ProbeTimeouts } from './probe-context.js'
import { systemProbeEnvironment, type ProbeEnvironment } from './probe-environment.js'
import { runProbeAsync, runProbeSync } from './probe-runner.js'
import { probeCpu } from './probes/cpu-probe.js'
import { probeCuda } from './probes/cuda-probe.js'
import { probeMps } from './probes/mps-probe.js'
import { probeOpenvino } from './probes/openvino-probe.js'
import { probeQualcomm } from './probes/qualcomm-probe.js'
import { probeRocm } from './probes/rocm-probe.js'
import { probeWebgpu } from './probes/webgpu-probe.js'
import { probeWebnn } from './probes/webnn-probe.js'

export interface HardwareDetectionInit {
  /** Replaces parts of the real system (PATH, a filesystem root, the onnxruntime binding); see `ProbeEnvironment`. */
  environment?: Partial<ProbeEnvironment>
  timeouts?: Partial<ProbeTimeouts>
  logger?: Logger
}

type ProbeTable = { [K in keyof HardwareReport]: (ctx: ProbeContext) => Probe<HardwareReport[K]> }

const PROBES: ProbeTable = {
  cpu: probeCpu,
  cuda: probeCuda,
  openvino: probeOpenvino,
  mps: probeMps,
  rocm: probeRocm,
  qualcomm: probeQualcomm,
  webnn: probeWebnn,
  webgpu: probeWebgpu
}

/**
 * Probes CPU, CUDA, OpenVINO, MPS (CoreML), ROCm, Qualcomm (QNN), WebNN and WebGPU and reports each as
 * `{ available, reason?, ...details }`. One instance per accelerator: it owns its cache.
 */
export class HardwareDetection {
  readonly environment: ProbeEnvironment
  readonly timeouts: ProbeTimeouts
  private readonly logger: Logger
  private report: HardwareReport | undefined
  private pending: Promise<HardwareReport> | undefined
  /** Bumped by `refresh()`, so a detection started before it cannot store its stale report after it. */
  private generation = 0

  constructor (init: HardwareDetectionInit = {}) {
    for (const [field, value] of [['init', init], ['init.environment', init?.environment ?? {}], ['init.timeouts', init?.timeouts ?? {}]] as const) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw ValidationError.field(field, `expected an object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`)
    }
    this.environment = systemProbeEnvironment(init.environment)
    this.timeouts = { ...DEFAULT_PROBE_TIMEOUTS, ...init.timeouts }
    this.logger = init.logger ?? silentLogger()
  }

  /**
   * Probes every backend, blocking until done (vendor tools and session probes run one after another), and
   * caches the report: later calls return the same frozen object until `refresh()`.
   */
  detectAllHardware (): HardwareReport {
    if (this.report !== undefined) return this.report
    const ctx = this.context()
    const entries = BACKEND_KEYS.map(key => [key, runProbeSync(PROBES[key](ctx) as Probe<unknown>, this.environment)] as const)
    return this.store(Object.fromEntries(entries) as unknown as HardwareReport)
  }

  /**
   * The same report without blocking the event loop: every probe's commands run at once. Shares the cache
   * with `detectAllHardware()`; concurrent callers share one detection.
   */
  async detectAllHardwareAsync (): Promise<HardwareReport> {
    if (this.report !== undefined) return this.report
    if (this.pending !== undefined) return await this.pending
    const ctx = this.context()
    const generation = this.generation
    const pending = Promise.all(BACKEND_KEYS.map(async key => [key, await runProbeAsync(PROBES[key](ctx) as Probe<unknown>, this.environment)] as const))
      .then(entries => {
        const report = Object.fromEntries(entries) as unknown as HardwareReport
        // A synchronous detection may have finished meanwhile: keep the first report, so callers share one object.
        if (generation !== this.generation) return deepFreeze(report)
        return this.report ?? this.store(report)
      })
    this.pending = pending
    try {
      return await pending
    } finally {
      if (this.pending === pending) this.pending = undefined
    }
  }

  /** Forgets the cached report: the next detection probes again (after a driver install, say). */
  refresh (): void {
    this.generation++
    this.report = undefined
    this.pending = undefined
  }

  /** Reads the onnxruntime binding's provider list once per detection; every probe shares it. */
  private context (): ProbeContext {
    try {
      return { env: this.environment, timeouts: this.timeouts, ortBackends: [...this.environment.ortBackends()] }
    } catch (err) {
      return { env: this.environment, timeouts: this.timeouts, ortBackends: [], ortError: err instanceof Error ? err.message : String(err) }
    }
  }

  private store (report: HardwareReport): HardwareReport {
    const frozen = deepFreeze(report)
    this.report = frozen
    for (const key of BACKEND_KEYS) {
      const status = frozen[key]
      if (status.available) this.logger.debug({ backend: key, status }, `${key} available`)
      else this.logger.debug({ backend: key, status }, `${key} unavailable: ${status.reason}`)
    }
    return frozen
  }
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
