/**
 * What every probe receives, and the small helpers they share. Probes are generators that yield the
 * slow things they need (a command to run, an async browser API call) and get the answer back: one probe
 * body then serves both the synchronous `detectAllHardware()` (commands run with `spawnSync`) and the
 * asynchronous one (all probes' commands run at once), without writing each probe twice.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { ExecResult, OrtBackendInfo, ProbeEnvironment } from './probe-environment.js'

/** Time limits for probes, in milliseconds. */
export interface ProbeTimeouts {
  /** Vendor tools (`nvidia-smi`, `rocm-smi`, `sysctl`). */
  commandMs: number
  /** A child process that creates an onnxruntime session on a device (adapter and driver start-up included). */
  sessionMs: number
}

/** Defaults: a healthy `nvidia-smi` answers in well under a second; CUDA or WebGPU start-up can take several. */
export const DEFAULT_PROBE_TIMEOUTS: Readonly<ProbeTimeouts> = Object.freeze({ commandMs: 5_000, sessionMs: 30_000 })

export interface ProbeContext {
  env: ProbeEnvironment
  timeouts: ProbeTimeouts
  /** The providers compiled into the onnxruntime-node binding (read once per detection). */
  ortBackends: readonly OrtBackendInfo[]
  /** Why the binding could not be read, when it could not. */
  ortError?: string
}

/** A slow step a probe asks its driver to perform. */
export type ProbeRequest =
  | { kind: 'exec', command: string, args: readonly string[], timeoutMs: number }
  | { kind: 'async', label: string, timeoutMs: number, run: () => Promise<unknown> }

/** The driver's answer to an `async` request. */
export interface AsyncAnswer { ok: boolean, value?: unknown, error?: string }

export type ProbeAnswer = ExecResult | AsyncAnswer

/** A probe: yields requests, receives answers, returns its report entry. */
export type Probe<T> = Generator<ProbeRequest, T, ProbeAnswer>

/** Runs a command through the driver: `const r = yield * exec(...)`. */
export function * exec (command: string, args: readonly string[], timeoutMs: number): Generator<ProbeRequest, ExecResult, ProbeAnswer> {
  return (yield { kind: 'exec', command, args, timeoutMs }) as ExecResult
}

/** Runs an async call through the driver; a synchronous driver answers that it cannot. */
export function * callAsync (label: string, timeoutMs: number, run: () => Promise<unknown>): Generator<ProbeRequest, AsyncAnswer, ProbeAnswer> {
  return (yield { kind: 'async', label, timeoutMs, run }) as AsyncAnswer
}

/** The path a probe should read for an absolute system path (`/proc/cpuinfo`), under the environment's root. */
export function systemPath (ctx: ProbeContext, absolute: string): string {
  return ctx.env.fsRoot === '/' ? absolute : join(ctx.env.fsRoot, absolute)
}

export function readText (ctx: ProbeContext, absolute: string): string | undefined {
  try {
    return readFileSync(systemPath(ctx, absolute), 'utf8')
  } catch {
    return undefined
  }
}

export function pathExists (ctx: ProbeContext, absolute: string): boolean {
  return existsSync(systemPath(ctx, absolute))
}

export function listDir (ctx: ProbeContext, absolute: string): string[] {
  try {
    return readdirSync(systemPath(ctx, absolute)).sort()
  } catch {
    return []
  }
}

/** Whether the onnxruntime-node binding was compiled with a provider. */
export function ortHasBackend (ctx: ProbeContext, name: string): boolean {
  return ctx.ortBackends.some(b => b.name === name)
}

/** A one-line reason for a provider missing from the binding, naming what the binding does offer. */
export function missingBackendReason (ctx: ProbeContext, name: string, label: string): string {
  if (ctx.ortError !== undefined) return `onnxruntime-node could not be loaded: ${ctx.ortError}`
  return `this onnxruntime-node build (${ctx.env.platform}/${ctx.env.arch}) has no ${label} execution provider ` +
    `(it offers: ${ctx.ortBackends.map(b => b.name).join(', ') || 'none'})`
}

/** File name of an onnxruntime provider library on this platform (`libonnxruntime_providers_cuda.so`). */
export function providerLibraryName (platform: string, provider: string): string {
  if (platform === 'win32') return `onnxruntime_providers_${provider}.dll`
  if (platform === 'darwin') return `libonnxruntime_providers_${provider}.dylib`
  return `libonnxruntime_providers_${provider}.so`
}

/** Whether a file sits next to the onnxruntime-node binding (real path: the binding folder is not under `fsRoot`). */
export function ortFileExists (ctx: ProbeContext, fileName: string): boolean {
  return ctx.env.ortBinaryDir !== undefined && existsSync(join(ctx.env.ortBinaryDir, fileName))
}
