/**
 * A canonical, JSON-safe form of an inference input: typed arrays become plain arrays, object keys are
 * sorted, bytes become base64. Two inputs that mean the same thing give the same string, so it can key
 * the result cache.
 */
export function canonicalize (value: unknown): unknown {
  if (value === null || value === undefined) return null
  if (typeof value === 'bigint') return value.toString()
  if (typeof value !== 'object') return value
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') }
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number | bigint>, v => typeof v === 'bigint' ? Number(v) : v)
  if (Array.isArray(value)) return value.map(canonicalize)
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[key]
    if (v !== undefined && typeof v !== 'function') out[key] = canonicalize(v)
  }
  return out
}

export function canonicalJson (value: unknown): string {
  return JSON.stringify(canonicalize(value))
}
