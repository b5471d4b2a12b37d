/**
 * The CPU time a Linux container may use (its cgroup's CPU quota). `os.availableParallelism()` counts the
 * cores a process may run on, not the time it is allowed: in a container started with `--cpus=2` on a
 * 64-core host it says 64, and onnxruntime with 64 threads is then throttled by the kernel for most of
 * every period (latency several times worse than with 2 threads). The quota is read the way Go's
 * automaxprocs and the JVM read it: cgroup v2 `cpu.max` (the lowest along the process's cgroup path), else
 * cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`.
 */
import { readText, type ProbeContext } from '../probe-context.js'

/** CPUs' worth of time per period the process's cgroup allows (1.5 for `--cpus=1.5`), or undefined: no limit found. */
export function cgroupCpuQuota (ctx: ProbeContext): number | undefined {
  const membership = readText(ctx, '/proc/self/cgroup') ?? ''
  return cgroupV2Quota(ctx, membership) ?? cgroupV1Quota(ctx, membership)
}

/** Cores to use under a quota: whole CPUs' worth, at least one (as automaxprocs rounds). */
export function coresUnderQuota (cores: number, quota: number | undefined): number {
  return quota === undefined ? cores : Math.max(1, Math.min(cores, Math.floor(quota)))
}

function cgroupV2Quota (ctx: ProbeContext, membership: string): number | undefined {
  const line = membership.split('\n').find(l => l.startsWith('0::'))
  // the cgroup's own folder and every parent: a limit anywhere above applies too
  const own = line === undefined ? '/' : line.slice(3).trim() || '/'
  const folders = ['']
  let at = ''
  for (const part of own.split('/').filter(p => p !== '')) folders.push(at += `/${part}`)
  let lowest: number | undefined
  for (const folder of folders) {
    const text = readText(ctx, `/sys/fs/cgroup${folder}/cpu.max`)
    if (text === undefined) continue
    const [max, period] = text.trim().split(/\s+/)
    const quota = ratio(max, period ?? '100000')
    if (quota !== undefined) lowest = Math.min(lowest ?? quota, quota)
  }
  return lowest
}

function cgroupV1Quota (ctx: ProbeContext, membership: string): number | undefined {
  // e.g. `4:cpu,cpuacct:/docker/abc`; inside a container's namespace the path is usually `/`
  const line = membership.split('\n').find(l => l.split(':')[1]?.split(',').includes('cpu') === true)
  const own = line === undefined ? '' : line.split(':').slice(2).join(':').trim().replace(/\/$/, '')
  for (const mount of ['/sys/fs/cgroup/cpu,cpuacct', '/sys/fs/cgroup/cpu']) {
    for (const folder of own === '' ? [''] : [own, '']) {
      const quota = readText(ctx, `${mount}${folder}/cpu.cfs_quota_us`)
      const period = readText(ctx, `${mount}${folder}/cpu.cfs_period_us`)
      if (quota === undefined || period === undefined) continue
      return ratio(quota.trim(), period.trim())
    }
  }
  return undefined
}

/** quota / period, or undefined for "max" / -1 (no limit) and anything unreadable. */
function ratio (quota: string, period: string): number | undefined {
  const q = Number(quota)
  const p = Number(period)
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined
  return q / p
}
