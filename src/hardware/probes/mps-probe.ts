/**
 * Apple silicon (the seed calls it "mps"). onnxruntime-node has no Metal Performance Shaders provider; it
 * reaches the Apple GPU and Neural Engine through CoreML, so this probe checks macOS on arm64, the CoreML
 * provider in the binding, and a session that starts on it.
 */
import { availability, type MpsStatus } from '../hardware-report.js'
import { exec, missingBackendReason, ortHasBackend, type Probe, type ProbeContext } from '../probe-context.js'
import { probeSession } from '../session-probe.js'

export function * probeMps (ctx: ProbeContext): Probe<MpsStatus> {
  const { env } = ctx
  const providerInstalled = ortHasBackend(ctx, 'coreml')
  const base = { provider: 'coreml' as const, provider_installed: providerInstalled }
  if (env.platform !== 'darwin' || env.arch !== 'arm64') {
    return { ...base, available: false, reason: `Apple GPU acceleration needs macOS on Apple silicon (this is ${env.platform}/${env.arch})` }
  }
  const brand = yield * exec('sysctl', ['-n', 'machdep.cpu.brand_string'], ctx.timeouts.commandMs)
  const chip = brand.ok ? brand.stdout.trim() : undefined
  const details = { ...base, ...(chip === undefined || chip === '' ? {} : { chip }) }
  if (!providerInstalled) return { ...details, available: false, reason: missingBackendReason(ctx, 'coreml', 'CoreML') }
  const session = yield * probeSession(ctx, 'coreml')
  return { ...details, ...availability(session.ok ? [] : [`a test session on CoreML failed: ${session.error ?? 'unknown error'}`]) }
}
