/**
 * Everything the hardware probes read from the outside world, in one injectable object: the platform,
 * environment variables (PATH above all), a filesystem root, a way to run commands with a time limit and
 * where onnxruntime-node lives. The default reads the real system; tests point PATH at fake vendor tools
 * and `fsRoot` at a folder of fake driver files.
 */
import { execFile, spawnSync, type ExecFileException } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { dirname, join } from 'node:path'

/** What a command run by a probe gave back. Never throws: failures are described. */
export interface ExecResult {
  /** True when the command ran and exited with status 0. */
  ok: boolean
  status: number | null
  stdout: string
  stderr: string
  /** The command was not found on PATH. */
  notFound: boolean
  /** The command ran past its time limit and was killed. */
  timedOut: boolean
  /** A one-line description of the failure, when `ok` is false. */
  error?: string
}

/** A provider compiled into the onnxruntime-node binding, as `listSupportedBackends()` lists it. */
export interface OrtBackendInfo {
  name: string
  /** False for providers whose libraries are downloaded separately (CUDA, TensorRT). */
  bundled: boolean
}

/** The subset of the browser `navigator` the probes look at. */
export interface ProbeNavigator {
  gpu?: { requestAdapter: () => Promise<unknown> }
  ml?: { createContext?: () => Promise<unknown> }
}

export interface ProbeEnvironment {
  platform: NodeJS.Platform
  arch: string
  /** Environment variables for probes and the commands they run (PATH, LD_LIBRARY_PATH, INTEL_OPENVINO_DIR, ...). */
  env: Readonly<Record<string, string | undefined>>
  /**
   * System paths the probes read (`/proc/...`, `/dev/kfd`, `/opt/rocm`, and folders named by variables
   * such as INTEL_OPENVINO_DIR) are resolved under this folder. `ortBinaryDir` is not: it is a real path.
   */
  fsRoot: string
  /** Runs a command, synchronously, killing it after `timeoutMs`. */
  exec: (command: string, args: readonly string[], timeoutMs: number) => ExecResult
  /** The same without blocking; when absent the synchronous one is used. */
  execAsync?: (command: string, args: readonly string[], timeoutMs: number) => Promise<ExecResult>
  /** The node executable that runs onnxruntime session probes in a child process. */
  nodePath: string
  /** Path `require()` loads onnxruntime-node from (in session probe children); undefined when it is not installed. */
  ortModulePath: string | undefined
  /** Folder holding `onnxruntime_binding.node` and the provider libraries; undefined when not found. */
  ortBinaryDir: string | undefined
  /** The providers the binding was compiled with; throws when the binding cannot load. */
  ortBackends: () => readonly OrtBackendInfo[]
  cpus: () => os.CpuInfo[]
  totalMemory: number
  availableParallelism: number
  /** `globalThis.navigator` where the runtime has one. */
  navigator?: ProbeNavigator
}

/**
 * The real system, with any piece replaced by `overrides`. Commands run with `overrides.env` (so a test's
 * PATH decides which `nvidia-smi` is found), and the onnxruntime-node binary folder follows the
 * (possibly overridden) platform and arch.
 */
export function systemProbeEnvironment (overrides: Partial<ProbeEnvironment> = {}): ProbeEnvironment {
  const platform = overrides.platform ?? process.platform
  const arch = overrides.arch ?? process.arch
  const env = overrides.env ?? process.env
  const require = createRequire(import.meta.url)
  const ortModulePath = 'ortModulePath' in overrides ? overrides.ortModulePath : resolveOrNone(require, 'onnxruntime-node')
  const ortBinaryDir = 'ortBinaryDir' in overrides ? overrides.ortBinaryDir : findOrtBinaryDir(require, platform, arch)
  return {
    platform,
    arch,
    env,
    fsRoot: overrides.fsRoot ?? '/',
    exec: overrides.exec ?? ((command, args, timeoutMs) => execSync(command, args, timeoutMs, env)),
    execAsync: overrides.execAsync ?? (overrides.exec === undefined
      ? (command, args, timeoutMs) => execAsync(command, args, timeoutMs, env)
      : undefined),
    nodePath: overrides.nodePath ?? process.execPath,
    ortModulePath,
    ortBinaryDir,
    // Loading the native binding is deferred to the first probe that asks, never done on import.
    ortBackends: overrides.ortBackends ?? (() => {
      if (ortModulePath === undefined) throw new Error('onnxruntime-node is not installed')
      const ort = require(ortModulePath) as { listSupportedBackends?: () => OrtBackendInfo[] }
      if (typeof ort.listSupportedBackends !== 'function') throw new Error('this onnxruntime-node has no listSupportedBackends()')
      return ort.listSupportedBackends()
    }),
    cpus: overrides.cpus ?? (() => os.cpus()),
    totalMemory: overrides.totalMemory ?? os.totalmem(),
    availableParallelism: overrides.availableParallelism ?? os.availableParallelism(),
    navigator: 'navigator' in overrides
      ? overrides.navigator
      : (globalThis as { navigator?: ProbeNavigator }).navigator
  }
}

function resolveOrNone (require: NodeJS.Require, id: string): string | undefined {
  try {
    return require.resolve(id)
  } catch {
    return undefined
  }
}

/**
 * onnxruntime-node keeps its binding in `bin/napi-v<N>/<platform>/<arch>/`; the N-API version in the
 * folder name changes between releases, so the folder is looked up rather than hard-coded.
 */
function findOrtBinaryDir (require: NodeJS.Require, platform: string, arch: string): string | undefined {
  const pkg = resolveOrNone(require, 'onnxruntime-node/package.json')
  if (pkg === undefined) return undefined
  const bin = join(dirname(pkg), 'bin')
  let napiDirs: string[]
  try {
    napiDirs = readdirSync(bin).filter(d => d.startsWith('napi-v')).sort().reverse()
  } catch {
    return undefined
  }
  for (const napi of napiDirs) {
    const dir = join(bin, napi, platform, arch)
    if (existsSync(dir)) return dir
  }
  return undefined
}

const MAX_OUTPUT = 1024 * 1024

function execSync (command: string, args: readonly string[], timeoutMs: number, env: Readonly<Record<string, string | undefined>>): ExecResult {
  const r = spawnSync(command, args, {
    env: env as NodeJS.ProcessEnv,
    timeout: timeoutMs,
    // A hung driver tool may ignore SIGTERM; the probe must come back within its bound.
    killSignal: 'SIGKILL',
    encoding: 'utf8',
    maxBuffer: MAX_OUTPUT,
    stdio: ['ignore', 'pipe', 'pipe'],
    windowsHide: true
  })
  const code = (r.error as NodeJS.ErrnoException | undefined)?.code
  return toExecResult(command, timeoutMs, r.status, r.stdout ?? '', r.stderr ?? '', code === 'ENOENT', code === 'ETIMEDOUT', r.error)
}

async function execAsync (command: string, args: readonly string[], timeoutMs: number, env: Readonly<Record<string, string | undefined>>): Promise<ExecResult> {
  return await new Promise(resolve => {
    const child = execFile(command, args, {
      env: env as NodeJS.ProcessEnv,
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      encoding: 'utf8',
      maxBuffer: MAX_OUTPUT,
      windowsHide: true
    }, (err, stdout, stderr) => {
      // execFile puts the errno name (ENOENT) or the exit status in `code`, and marks killed children.
      const e = err as (Omit<ExecFileException, 'code'> & { code?: string | number }) | null
      const notFound = e?.code === 'ENOENT'
      const timedOut = e?.killed === true && e.signal === 'SIGKILL'
      const status = e === null ? 0 : typeof e.code === 'number' ? e.code : null
      resolve(toExecResult(command, timeoutMs, status, stdout, stderr, notFound, timedOut, e ?? undefined))
    })
    child.stdin?.end()
  })
}

function toExecResult (command: string, timeoutMs: number, status: number | null, stdout: string, stderr: string,
  notFound: boolean, timedOut: boolean, error: Error | undefined): ExecResult {
  const ok = !notFound && !timedOut && status === 0
  let message: string | undefined
  if (notFound) message = `${command} not found on PATH`
  else if (timedOut) message = `${command} did not answer within ${timeoutMs} ms`
  else if (!ok) {
    const firstLine = (stderr.trim() || stdout.trim()).split('\n')[0]
    message = `${command} failed${status === null ? '' : ` with status ${status}`}${firstLine === '' || firstLine === undefined ? (error === undefined ? '' : `: ${error.message}`) : `: ${firstLine}`}`
  }
  return { ok, status, stdout, stderr, notFound, timedOut, ...(message === undefined ? {} : { error: message }) }
}
