/** Parsing of human-written sizes (`"8GB"`, `"512 MiB"`, `1048576`) into bytes. */

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40
}

/**
 * Returns the byte count of a size, or undefined when it cannot be read.
 * Decimal units (`KB`, `MB`, `GB`) are powers of 1000, binary ones (`KiB`, `MiB`, `GiB`) powers of 1024:
 * the seed's `"8GB"` and `"1GB"` are read the way disk and RAM vendors write them.
 */
export function parseSize (value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.floor(value) : undefined
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value)
  if (match === null) return undefined
  const unit = match[2].toLowerCase()
  const factor = unit === '' ? 1 : UNITS[unit]
  if (factor === undefined) return undefined
  return Math.floor(Number(match[1]) * factor)
}

/** Formats bytes for humans and logs (binary units). */
export function formatBytes (bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let i = 0
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024
    i++
  }
  return `${i === 0 ? value : value.toFixed(1)} ${units[i]}`
}
