/**
 * AMD ROCm. Needs the amdgpu kernel driver's compute interface (`/dev/kfd`), a GPU behind it (`rocm-smi`,
 * or the KFD topology in `/sys` when the tool is missing), and an onnxruntime provider for AMD GPUs
 * (MIGraphX, or the older ROCm one). onnxruntime-node's published binaries ship neither, so on a stock
 * install this reports the GPU and explains that a custom onnxruntime-node build is required.
 */
import { availability, formatMemory, type GpuDevice, type RocmStatus } from '../hardware-report.js'
import {
  exec, listDir, missingBackendReason, ortFileExists, ortHasBackend, pathExists, providerLibraryName, readText,
  type Probe, type ProbeContext
} from '../probe-context.js'
import { probeSession } from '../session-probe.js'

export const ROCM_SMI_ARGS = ['--showproductname', '--showmeminfo', 'vram', '--json'] as const

/**
 * Parses `rocm-smi --showproductname --showmeminfo vram --json`: an object keyed by card (`card0`), whose
 * field names changed case across ROCm releases ("Card series" / "Card Series"), so they are matched
 * without regard to case.
 */
export function parseRocmSmi (stdout: string): GpuDevice[] {
  let data: unknown
  try {
    // rocm-smi may print warnings before the JSON; start at the first brace.
    data = JSON.parse(stdout.slice(Math.max(0, stdout.indexOf('{'))))
  } catch {
    return []
  }
  if (typeof data !== 'object' || data === null) return []
  const gpus: GpuDevice[] = []
  for (const [card, fields] of Object.entries(data as Record<string, unknown>)) {
    const m = /^card:?(\d+)$/i.exec(card)
    if (m === null || typeof fields !== 'object' || fields === null) continue
    const get = (key: string): string | undefined => {
      const entry = Object.entries(fields as Record<string, unknown>).find(([k]) => k.toLowerCase() === key)
      return entry === undefined ? undefined : String(entry[1])
    }
    const name = get('card series') ?? get('card sku') ?? get('gfx version') ?? `AMD GPU ${m[1]}`
    const gpu: GpuDevice = { index: Number(m[1]), name }
    const bytes = Number(get('vram total memory (b)'))
    if (Number.isFinite(bytes) && bytes > 0) {
      gpu.memory_bytes = bytes
      gpu.memory = formatMemory(bytes)
    }
    gpus.push(gpu)
  }
  return gpus.sort((a, b) => a.index - b.index)
}

/** GPUs from the KFD topology: nodes with SIMD units are GPUs (CPU nodes report `simd_count 0`). */
function kfdGpus (ctx: ProbeContext): GpuDevice[] {
  const root = '/sys/class/kfd/kfd/topology/nodes'
  const gpus: GpuDevice[] = []
  for (const node of listDir(ctx, root)) {
    const props = readText(ctx, `${root}/${node}/properties`) ?? ''
    const simd = Number(/^simd_count\s+(\d+)/m.exec(props)?.[1] ?? 0)
    if (simd === 0) continue
    const name = (readText(ctx, `${root}/${node}/name`) ?? '').trim()
    gpus.push({ index: gpus.length, name: name === '' ? `AMD GPU (KFD node ${node})` : name })
  }
  return gpus
}

export function * probeRocm (ctx: ProbeContext): Probe<RocmStatus> {
  const { env } = ctx
  // MIGraphX is the provider onnxruntime keeps developing; the ROCm one was deprecated in its favour.
  const provider = (['migraphx', 'rocm'] as const).find(p => ortHasBackend(ctx, p))
  const providerInstalled = provider !== undefined && ortFileExists(ctx, providerLibraryName(env.platform, provider))
  const base = { devices: 0, gpus: [] as GpuDevice[], provider_installed: providerInstalled, ...(provider === undefined ? {} : { provider }) }
  if (env.platform !== 'linux') {
    return { ...base, available: false, reason: `ROCm needs Linux with an AMD GPU (this is ${env.platform}/${env.arch})` }
  }
  const versionText = readText(ctx, '/opt/rocm/.info/version')
  const version = versionText?.trim().split('\n')[0]
  const withVersion = { ...base, ...(version === undefined || version === '' ? {} : { version }) }
  if (!pathExists(ctx, '/dev/kfd')) {
    return { ...withVersion, available: false, reason: 'no AMD GPU compute device (/dev/kfd is absent: the amdgpu driver is not loaded or the device is not passed through)' }
  }
  const smi = yield * exec('rocm-smi', ROCM_SMI_ARGS, ctx.timeouts.commandMs)
  let gpus = smi.ok ? parseRocmSmi(smi.stdout) : []
  if (gpus.length === 0) gpus = kfdGpus(ctx)
  const details = { ...withVersion, devices: gpus.length, gpus }
  if (gpus.length === 0) {
    return { ...details, available: false, reason: `/dev/kfd exists but no AMD GPU was found (${smi.error ?? 'rocm-smi listed none'}; the KFD topology lists none)` }
  }
  const found = `${gpus.length} AMD GPU${gpus.length === 1 ? '' : 's'} found`
  if (provider === undefined) {
    return {
      ...details,
      available: false,
      reason: `${found}, but ${missingBackendReason(ctx, 'migraphx', 'MIGraphX or ROCm')}; ` +
        'build onnxruntime-node from source with --use_migraphx to use it'
    }
  }
  if (!providerInstalled) {
    return { ...details, available: false, reason: `${found}, but ${providerLibraryName(env.platform, provider)} is missing from ${env.ortBinaryDir ?? 'the onnxruntime-node binary folder'}` }
  }
  const session = yield * probeSession(ctx, provider)
  return { ...details, ...availability(session.ok ? [] : [`${found}, but a test session on ${provider} failed: ${session.error ?? 'unknown error'}`]) }
}
