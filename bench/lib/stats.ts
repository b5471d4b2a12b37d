/** Small statistics helpers for the benchmarks: order statistics over samples, no assumptions of normality. */

/** The q-quantile (0..1) of `samples` by linear interpolation between closest ranks. */
export function quantile (samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const pos = (sorted.length - 1) * Math.min(1, Math.max(0, q))
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
}

export const median = (samples: readonly number[]): number => quantile(samples, 0.5)
export const p90 = (samples: readonly number[]): number => quantile(samples, 0.9)

export interface Summary {
  n: number
  min: number
  p10: number
  median: number
  p90: number
  max: number
}

export function summarize (samples: readonly number[]): Summary {
  return {
    n: samples.length,
    min: Math.min(...samples),
    p10: quantile(samples, 0.1),
    median: median(samples),
    p90: p90(samples),
    max: Math.max(...samples)
  }
}

/** Formats a number with a fixed number of significant digits, without exponent notation. */
export function fmt (value: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value)
  if (value === 0) return '0'
  const magnitude = Math.floor(Math.log10(Math.abs(value)))
  const decimals = Math.max(0, digits - 1 - magnitude)
  return value.toFixed(Math.min(decimals, 6))
}

/** Shuffles in place (Fisher-Yates) with a seeded generator, so runs are reproducible. */
export function shuffle<T> (items: T[], seed = 1): T[] {
  let s = seed >>> 0
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[items[i], items[j]] = [items[j], items[i]]
  }
  return items
}

export const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))
