/** Markdown tables for benchmark output. */

export type Cell = string | number

/** A GitHub-flavoured markdown table; numeric columns are right-aligned. */
export function markdownTable (header: readonly string[], rows: ReadonlyArray<readonly Cell[]>): string {
  const numeric = header.map((_, c) => rows.length > 0 && rows.every(r => typeof r[c] === 'number' || /^[-+]?[\d.]+(x|%| ms| s)?$/.test(String(r[c]))))
  const text = rows.map(r => r.map(String))
  const widths = header.map((h, c) => Math.max(h.length, 3, ...text.map(r => (r[c] ?? '').length)))
  const line = (cells: readonly string[]): string => '| ' + cells.map((cell, c) => numeric[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c])).join(' | ') + ' |'
  const rule = '|' + widths.map((w, c) => numeric[c] ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2)).join('|') + '|'
  return [line(header), rule, ...text.map(line)].join('\n')
}
