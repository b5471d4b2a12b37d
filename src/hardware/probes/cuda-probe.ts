/**
 * NVIDIA CUDA. Three things must all hold: a GPU with a working driver (`nvidia-smi`, or the driver's
 * `/proc` files when the tool is missing or hangs), onnxruntime-node's CUDA provider libraries (they are a
 * separate download: `ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci`), and a session that really starts on the
 * GPU (which also catches missing CUDA 12 / cuDNN 9 runtime libraries).
 */
import { availability, formatMemory, type CudaStatus, type GpuDevice } from '../hardware-report.js'
import {
  exec, listDir, missingBackendReason, ortFileExists, ortHasBackend, providerLibraryName, readText,
  type Probe, type ProbeContext
} from '../probe-context.js'
import { probeSession } from '../session-probe.js'

/** The query `nvidia-smi` is run with; its CSV output is what `parseNvidiaSmi` reads. */
export const NVIDIA_SMI_ARGS = ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader,nounits'] as const

/** How to get the provider libraries that the npm tarball leaves out. */
export const CUDA_INSTALL_HINT = 'reinstall onnxruntime-node with its CUDA 12 libraries: ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci ' +
  '(CUDA 12 and cuDNN 9 must be on the library path)'

/** Parses `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits` (memory in MiB). */
export function parseNvidiaSmi (stdout: string): GpuDevice[] {
  const gpus: GpuDevice[] = []
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue
    // GPU names hold no commas; split from the right so one would only ever lengthen the name.
    const parts = line.split(',').map(p => p.trim())
    if (parts.length < 3) continue
    const driver = parts.pop() as string
    const mib = Number(parts.pop())
    const name = parts.join(', ')
    const gpu: GpuDevice = { index: gpus.length, name }
    // Some boards report "[N/A]" for memory (unified-memory parts); leave the field out then.
    if (Number.isFinite(mib) && mib > 0) {
      gpu.memory_bytes = mib * 2 ** 20
      gpu.memory = formatMemory(gpu.memory_bytes)
    }
    if (driver !== '' && !driver.startsWith('[')) gpu.driver = driver
    gpus.push(gpu)
  }
  return gpus
}

/** Reads the driver version from `/proc/driver/nvidia/version` (proprietary and open kernel modules). */
export function parseNvidiaDriverVersion (text: string): string | undefined {
  const first = text.split('\n')[0] ?? ''
  return /\b(\d{3,}\.\d+(?:\.\d+)?)\b/.exec(first)?.[1]
}

/** Reads one `/proc/driver/nvidia/gpus/<bus>/information` file: `Model:` and `Device Minor:`. */
export function parseNvidiaGpuInformation (text: string): { name?: string, minor?: number } {
  const name = /^Model:\s*(.+)$/m.exec(text)?.[1].trim()
  const minor = /^Device Minor:\s*(\d+)/m.exec(text)?.[1]
  return { ...(name === undefined ? {} : { name }), ...(minor === undefined ? {} : { minor: Number(minor) }) }
}

function procfsGpus (ctx: ProbeContext): { gpus: GpuDevice[], driver?: string } {
  const driver = (() => {
    const text = readText(ctx, '/proc/driver/nvidia/version')
    return text === undefined ? undefined : parseNvidiaDriverVersion(text)
  })()
  const found = listDir(ctx, '/proc/driver/nvidia/gpus').map((bus, i) => {
    const info = parseNvidiaGpuInformation(readText(ctx, `/proc/driver/nvidia/gpus/${bus}/information`) ?? '')
    return { index: info.minor ?? i, name: info.name ?? `NVIDIA GPU at ${bus}`, ...(driver === undefined ? {} : { driver }) }
  }).sort((a, b) => a.index - b.index)
  return { gpus: found, ...(driver === undefined ? {} : { driver }) }
}

export function * probeCuda (ctx: ProbeContext): Probe<CudaStatus> {
  const { env } = ctx
  // The CUDA provider is loaded through the shared-provider bridge: both libraries must be present.
  const missingLibs = [providerLibraryName(env.platform, 'cuda'), providerLibraryName(env.platform, 'shared')].filter(f => !ortFileExists(ctx, f))
  const providerInstalled = ortHasBackend(ctx, 'cuda') && missingLibs.length === 0
  const base = { devices: 0, gpus: [] as GpuDevice[], provider_installed: providerInstalled, provider: 'cuda' as const }
  if (env.platform !== 'linux' && env.platform !== 'win32') {
    return { ...base, available: false, reason: `CUDA needs Linux or Windows with an NVIDIA GPU (this is ${env.platform}/${env.arch})` }
  }

  let gpus: GpuDevice[] = []
  let source: CudaStatus['source']
  let driver: string | undefined
  const smi = yield * exec('nvidia-smi', NVIDIA_SMI_ARGS, ctx.timeouts.commandMs)
  if (smi.ok) {
    gpus = parseNvidiaSmi(smi.stdout)
    source = 'nvidia-smi'
    driver = gpus[0]?.driver
  }
  const smiProblem = smi.ok ? (gpus.length === 0 ? 'nvidia-smi listed no GPUs' : undefined) : smi.error
  if (gpus.length === 0 && env.platform === 'linux') {
    // nvidia-smi missing (containers often lack it) or hung: the kernel driver's files still list the GPUs.
    const proc = procfsGpus(ctx)
    if (proc.gpus.length > 0) {
      gpus = proc.gpus
      source = 'procfs'
      driver = proc.driver
    }
  }
  const details = {
    ...base,
    devices: gpus.length,
    gpus,
    ...(gpus[0]?.memory === undefined ? {} : { memory: gpus[0].memory }),
    ...(driver === undefined ? {} : { driver_version: driver }),
    ...(source === undefined ? {} : { source }),
    ...(source === 'procfs' && smiProblem !== undefined ? { nvidia_smi_error: smiProblem } : {})
  }
  if (gpus.length === 0) {
    const where = env.platform === 'linux' ? '; /proc/driver/nvidia/gpus lists none' : ''
    return { ...details, available: false, reason: `no NVIDIA GPU found (${smiProblem ?? 'nvidia-smi listed no GPUs'}${where})` }
  }
  const found = `${gpus.length} NVIDIA GPU${gpus.length === 1 ? '' : 's'} found`
  if (!ortHasBackend(ctx, 'cuda')) {
    return { ...details, available: false, reason: `${found}, but ${missingBackendReason(ctx, 'cuda', 'CUDA')}` }
  }
  if (!providerInstalled) {
    return {
      ...details,
      available: false,
      reason: `${found}, but onnxruntime-node's CUDA provider is not installed (${missingLibs.join(' and ')} ${missingLibs.length === 1 ? 'is' : 'are'} missing from ` +
        `${env.ortBinaryDir ?? 'the onnxruntime-node binary folder'}); ${CUDA_INSTALL_HINT}`
    }
  }
  const session = yield * probeSession(ctx, 'cuda')
  const problems = session.ok ? [] : [`${found} and the CUDA provider is installed, but a test session failed: ${session.error ?? 'unknown error'}`]
  return { ...details, ...availability(problems) }
}
