/**
 * WebGPU. In Node it is onnxruntime-node's bundled WebGPU provider (Dawn), which needs a real adapter
 * (Vulkan, Metal or D3D12): the only honest check is to create a session on it, in a child process. In a
 * runtime with `navigator.gpu` (browsers, Deno) the check is `requestAdapter()`.
 */
import { availability, type WebgpuStatus } from '../hardware-report.js'
import { callAsync, missingBackendReason, ortHasBackend, type Probe, type ProbeContext } from '../probe-context.js'
import { probeSession } from '../session-probe.js'

export function * probeWebgpu (ctx: ProbeContext): Probe<WebgpuStatus> {
  const gpu = ctx.env.navigator?.gpu
  if (gpu !== undefined && !ortHasBackend(ctx, 'webgpu')) {
    const answer = yield * callAsync('navigator.gpu.requestAdapter()', ctx.timeouts.commandMs, async () => await gpu.requestAdapter())
    const problems = !answer.ok
      ? [answer.error ?? 'navigator.gpu.requestAdapter() failed']
      : answer.value === null || answer.value === undefined ? ['navigator.gpu.requestAdapter() returned no adapter'] : []
    return { provider: 'webgpu', probe: 'navigator.gpu', ...availability(problems) }
  }
  if (!ortHasBackend(ctx, 'webgpu')) return { provider: 'webgpu', available: false, reason: missingBackendReason(ctx, 'webgpu', 'WebGPU') }
  const session = yield * probeSession(ctx, 'webgpu')
  return {
    provider: 'webgpu',
    probe: 'onnxruntime-session',
    ...availability(session.ok ? [] : [`onnxruntime-node's WebGPU provider could not start: ${session.error ?? 'unknown error'}`])
  }
}
