/** Markdown tables for benchmark output. */

export type Cell = string | number

/** A GitHub-flavoured markdown table; numeric columns are right-aligned. */
export function markdownTable (header: readonly string[], rows: ReadonlyArray<readonly Cell[]>): string {
  // A column is numeric when every cell is a number, optionally with a unit and a parenthesised spread, or '–' (none).
  const isNumber = (cell: Cell): boolean => typeof cell === 'number' || /^[-+]?[\d.]+(x|%| ms| s)?( \(.*\))?$/.test(cell)
  const numeric = header.map((_, c) => rows.some(r => isNumber(r[c])) && rows.every(r => isNumber(r[c]) || r[c] === '–'))
  const text = rows.map(r => r.map(String))
  const widths = header.map((h, c) => Math.max(h.length, 3, ...text.map(r => (r[c] ?? '').length)))
  const line = (cells: readonly string[]): string => '| ' + cells.map((cell, c) => numeric[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c])).join(' | ') + ' |'
  const rule = '|' + widths.map((w, c) => numeric[c] ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2)).join('|') + '|'
  return [line(header), rule, ...text.map(line)].join('\n')
}
