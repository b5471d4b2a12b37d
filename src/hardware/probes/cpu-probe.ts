/**
 * CPU: always present, but "available" still means onnxruntime-node's CPU provider loaded here. Reports
 * cores, model, RAM and the SIMD features that decide how fast ORT's kernels run (AVX2/AVX-512/VNNI on
 * x86, NEON/dot-product/i8mm on Arm).
 */
import { availability, formatMemory, type CpuStatus } from '../hardware-report.js'
import { exec, missingBackendReason, ortHasBackend, readText, type Probe, type ProbeContext } from '../probe-context.js'
import { cgroupCpuQuota, coresUnderQuota } from './cpu-quota.js'

/** x86 `/proc/cpuinfo` flags worth reporting, under their Linux names. */
export const X86_SIMD_FLAGS = [
  'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16',
  'avx512_fp16', 'avx_vnni', 'amx_tile', 'amx_int8', 'amx_bf16'
] as const

/** Arm `Features` names and what they are reported as. */
const ARM_FEATURES: Record<string, string> = {
  asimd: 'neon',
  asimdhp: 'fp16',
  asimddp: 'dotprod',
  i8mm: 'i8mm',
  bf16: 'bf16',
  sve: 'sve',
  sve2: 'sve2'
}

/** macOS `machdep.cpu.*features` tokens, mapped to the Linux flag names above. */
const DARWIN_X86_FEATURES: Record<string, string> = {
  'SSE4.2': 'sse4_2',
  'AVX1.0': 'avx',
  AVX2: 'avx2',
  FMA: 'fma',
  F16C: 'f16c',
  AVX512F: 'avx512f',
  AVX512BW: 'avx512bw',
  AVX512VL: 'avx512vl',
  AVX512VNNI: 'avx512_vnni'
}

/** Reads SIMD flags from `/proc/cpuinfo` text (x86 `flags` or Arm `Features` line). */
export function parseCpuinfoSimd (cpuinfo: string, arch: string): Record<string, boolean> {
  const simd: Record<string, boolean> = {}
  if (arch === 'x64' || arch === 'ia32') {
    const line = /^flags\s*:(.*)$/m.exec(cpuinfo)
    if (line === null) return simd
    const flags = new Set(line[1].trim().split(/\s+/))
    for (const f of X86_SIMD_FLAGS) simd[f] = flags.has(f)
    return simd
  }
  if (arch === 'arm64') {
    const line = /^Features\s*:(.*)$/m.exec(cpuinfo)
    if (line === null) return simd
    const features = new Set(line[1].trim().split(/\s+/))
    for (const [feature, name] of Object.entries(ARM_FEATURES)) simd[name] = features.has(feature)
  }
  return simd
}

export function * probeCpu (ctx: ProbeContext): Probe<CpuStatus> {
  const { env } = ctx
  const cpus = env.cpus()
  let simd: Record<string, boolean> = {}
  if (env.platform === 'linux') {
    const cpuinfo = readText(ctx, '/proc/cpuinfo')
    if (cpuinfo !== undefined) simd = parseCpuinfoSimd(cpuinfo, env.arch)
  } else if (env.platform === 'darwin' && env.arch === 'arm64') {
    // Advanced SIMD is part of every AArch64 core Apple ships; sysctl's FEAT_* keys add the rest.
    simd = { neon: true }
    const r = yield * exec('sysctl', ['-n', 'hw.optional.arm.FEAT_DotProd', 'hw.optional.arm.FEAT_I8MM', 'hw.optional.arm.FEAT_BF16'], ctx.timeouts.commandMs)
    const [dot, i8mm, bf16] = r.ok ? r.stdout.trim().split('\n') : []
    if (dot !== undefined) simd.dotprod = dot.trim() === '1'
    if (i8mm !== undefined) simd.i8mm = i8mm.trim() === '1'
    if (bf16 !== undefined) simd.bf16 = bf16.trim() === '1'
  } else if (env.platform === 'darwin') {
    const r = yield * exec('sysctl', ['-n', 'machdep.cpu.features', 'machdep.cpu.leaf7_features'], ctx.timeouts.commandMs)
    if (r.ok) {
      const tokens = new Set(r.stdout.trim().split(/\s+/))
      for (const [token, name] of Object.entries(DARWIN_X86_FEATURES)) simd[name] = tokens.has(token)
    }
  }
  const problems: string[] = []
  if (!ortHasBackend(ctx, 'cpu')) problems.push(missingBackendReason(ctx, 'cpu', 'CPU'))
  if (env.availableParallelism < 1) problems.push('no CPU cores are available to this process')
  const quota = env.platform === 'linux' ? cgroupCpuQuota(ctx) : undefined
  return {
    ...availability(problems),
    cores: coresUnderQuota(env.availableParallelism, quota),
    ...(quota === undefined ? {} : { cpu_quota: Math.round(quota * 100) / 100 }),
    model: cpus[0]?.model.trim() ?? 'unknown',
    arch: env.arch,
    memory_total: formatMemory(env.totalMemory),
    memory_total_bytes: env.totalMemory,
    simd,
    provider: 'cpu'
  }
}
