/**
 * The decisive check for an accelerator: create an onnxruntime session on it and run it once. It runs in a
 * child process with a time limit because a broken driver can hang or crash the process that loads it,
 * and because a provider that fails to initialise leaves state behind in the process that tried.
 */
import { GraphBuilder } from '../models/tiny/onnx-graph.js'
import { exec, type Probe, type ProbeContext } from './probe-context.js'

export interface SessionProbeResult {
  ok: boolean
  /** onnxruntime's own message, or what went wrong with the child process. */
  error?: string
}

/**
 * A one-node model (y = Identity(x)) built in memory: the smallest graph a provider must accept. Built
 * per call, not kept at module level; it is a few dozen bytes.
 */
export function identityModel (): Uint8Array {
  const g = new GraphBuilder('hardware-probe')
  const x = g.input('x', 'float32', [1])
  g.op('Identity', [x], {}, 'y')
  g.output('y', 'float32', [1])
  return g.toBytes()
}

// Plain CommonJS so it runs with `node -e` and no loader. Arguments: module path, base64 model, provider.
// The explicit exit matters: some providers keep native threads alive after the session is released.
const CHILD_SCRIPT = `
const ort = require(process.argv[1]);
const model = Buffer.from(process.argv[2], 'base64');
const ep = process.argv[3];
const done = (r) => process.stdout.write(JSON.stringify(r), () => process.exit(0));
ort.InferenceSession.create(model, { executionProviders: [ep], logSeverityLevel: 3 })
  .then(async (s) => {
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([2]), [1]) });
    const value = out.y.data[0];
    await s.release();
    return value === 2 ? { ok: true } : { ok: false, error: 'the test session returned ' + value + ' instead of 2' };
  })
  .catch((e) => ({ ok: false, error: String((e && e.message) || e) }))
  .then(done);
`

/** Creates and runs a session with `executionProviders: [provider]` in a child process. */
export function * probeSession (ctx: ProbeContext, provider: string): Probe<SessionProbeResult> {
  if (ctx.env.ortModulePath === undefined) return { ok: false, error: 'onnxruntime-node is not installed' }
  const model = Buffer.from(identityModel()).toString('base64')
  const r = yield * exec(ctx.env.nodePath, ['-e', CHILD_SCRIPT, ctx.env.ortModulePath, model, provider], ctx.timeouts.sessionMs)
  if (r.timedOut) return { ok: false, error: `a test session on ${provider} did not finish within ${ctx.timeouts.sessionMs} ms` }
  const line = r.stdout.trim().split('\n').pop() ?? ''
  const hint = libraryHint(r.stderr)
  try {
    const parsed = JSON.parse(line) as SessionProbeResult
    if (typeof parsed.ok === 'boolean') {
      return parsed.ok ? { ok: true } : { ok: false, error: oneLine(parsed.error ?? 'unknown error') + (hint === undefined ? '' : ` (${hint})`) }
    }
  } catch {}
  return { ok: false, error: r.error ?? `the ${provider} session probe printed no result (${oneLine(r.stderr) || 'no output'})` }
}

/** onnxruntime messages carry newlines; keep them on one line, bounded. */
function oneLine (message: string): string {
  return message.replace(/\s+/g, ' ').trim().slice(0, 500)
}

/**
 * The thrown error often says only "Failed to load shared library"; onnxruntime and Dawn log which
 * library was missing (libcublasLt.so.12, libvulkan.so.1) on stderr. That line is what a user needs.
 */
function libraryHint (stderr: string): string | undefined {
  const lines = stderr.replace(/\u001b\[[0-9;]*m/g, '').split('\n')
  const line = lines.find(l => /cannot open shared object|couldn't load|failed to load library/i.test(l))
  if (line === undefined) return undefined
  const detail = /(?:with error:|Couldn't load)\s*(.+)$/i.exec(line)
  return oneLine(detail === null ? line : (line.includes("Couldn't load") ? `couldn't load ${detail[1]}` : detail[1])).slice(0, 300)
}
