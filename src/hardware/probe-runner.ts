/**
 * The two drivers that run probe generators: one synchronous (each request answered with `spawnSync`,
 * async requests refused), one asynchronous (requests answered with non-blocking calls, so several probes
 * wait on their commands at the same time).
 */
import type { AsyncAnswer, Probe, ProbeAnswer, ProbeRequest } from './probe-context.js'
import type { ProbeEnvironment } from './probe-environment.js'

/** Runs a probe to completion, blocking. */
export function runProbeSync<T> (probe: Probe<T>, env: ProbeEnvironment): T {
  let step = probe.next()
  while (step.done !== true) step = probe.next(answerSync(step.value, env))
  return step.value
}

/** Runs a probe to completion without blocking the event loop. */
export async function runProbeAsync<T> (probe: Probe<T>, env: ProbeEnvironment): Promise<T> {
  let step = probe.next()
  while (step.done !== true) step = probe.next(await answerAsync(step.value, env))
  return step.value
}

function answerSync (request: ProbeRequest, env: ProbeEnvironment): ProbeAnswer {
  if (request.kind === 'exec') return env.exec(request.command, request.args, request.timeoutMs)
  return { ok: false, error: `${request.label} can only be checked asynchronously (use detectAllHardwareAsync())` }
}

async function answerAsync (request: ProbeRequest, env: ProbeEnvironment): Promise<ProbeAnswer> {
  if (request.kind === 'exec') {
    return env.execAsync !== undefined
      ? await env.execAsync(request.command, request.args, request.timeoutMs)
      : env.exec(request.command, request.args, request.timeoutMs)
  }
  return await withTimeout(request.label, request.timeoutMs, request.run)
}

async function withTimeout (label: string, timeoutMs: number, run: () => Promise<unknown>): Promise<AsyncAnswer> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<AsyncAnswer>(resolve => {
    timer = setTimeout(() => resolve({ ok: false, error: `${label} did not answer within ${timeoutMs} ms` }), timeoutMs)
  })
  try {
    return await Promise.race([
      run().then(value => ({ ok: true, value }), (err: unknown) => ({ ok: false, error: `${label} failed: ${err instanceof Error ? err.message : String(err)}` })),
      timeout
    ])
  } finally {
    clearTimeout(timer)
  }
}
