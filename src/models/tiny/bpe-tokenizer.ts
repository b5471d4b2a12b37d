/**
 * Byte-level BPE vocabularies for the tiny GPT-2 and CLIP models. The 256 byte tokens (GPT-2's
 * `bytes_to_unicode` alphabet) make every input tokenizable; merges are grown from common English
 * words so that text becomes a few multi-character tokens, as with the real tokenizers. Each merge
 * is added only when the word's current segmentation is a fixed point of the merges before it, so
 * every merge is reachable and its result is in the vocabulary.
 */
import { ENGLISH_WORDS } from './english-words.js'

/** GPT-2's reversible byte -> printable character table. Index = byte. */
export function bytesToUnicode (): string[] {
  const printable: number[] = []
  for (let b = 33; b <= 126; b++) printable.push(b)
  for (let b = 161; b <= 172; b++) printable.push(b)
  for (let b = 174; b <= 255; b++) printable.push(b)
  const table: string[] = new Array(256)
  for (const b of printable) table[b] = String.fromCodePoint(b)
  let extra = 0
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCodePoint(256 + extra++)
  }
  return table
}

/** The byte alphabet in GPT-2's vocabulary order (printable bytes first): ids 0..255 of the real tokenizers. */
export function byteAlphabet (): string[] {
  const table = bytesToUnicode()
  const order: number[] = []
  for (let b = 33; b <= 126; b++) order.push(b)
  for (let b = 161; b <= 172; b++) order.push(b)
  for (let b = 174; b <= 255; b++) order.push(b)
  for (let b = 0; b < 256; b++) if (!order.includes(b)) order.push(b)
  return order.map(b => table[b])
}

/** Text as byte-level symbols (UTF-8 bytes through {@link bytesToUnicode}). */
export function toByteSymbols (text: string, table = bytesToUnicode()): string[] {
  return Array.from(new TextEncoder().encode(text), b => table[b])
}

export interface BpeVocabulary {
  /** Tokens, index = id. */
  vocab: string[]
  /** Merges in rank order, as `[left, right]` pairs. */
  merges: Array<[string, string]>
}

export interface BpeGrowOptions {
  /** Tokens already in the vocabulary (the byte alphabet, and its `</w>` forms for CLIP). */
  base: readonly string[]
  /** How many tokens the merges may add. */
  newTokens: number
  /** Words to merge, each as its initial symbols, in order of preference. */
  words: Iterable<string[]>
}

/** Grows merges over `words` until `newTokens` tokens were added (or the words run out). */
export function growBpe (options: BpeGrowOptions): BpeVocabulary {
  const vocab = [...options.base]
  const known = new Set(vocab)
  const merges: Array<[string, string]> = []
  const ranks = new Map<string, number>()
  let added = 0
  for (const symbols of options.words) {
    if (added >= options.newTokens) break
    let pieces = applyMerges(symbols, ranks)
    while (pieces.length > 1 && added < options.newTokens) {
      const [left, right] = pieces
      const merged = left + right
      ranks.set(`${left} ${right}`, merges.length)
      merges.push([left, right])
      if (!known.has(merged)) {
        known.add(merged)
        vocab.push(merged)
        added++
      }
      pieces = [merged, ...pieces.slice(2)]
    }
  }
  return { vocab, merges }
}

/** Standard BPE: repeatedly merge the adjacent pair of lowest rank. */
export function applyMerges (symbols: readonly string[], ranks: ReadonlyMap<string, number>): string[] {
  let pieces = [...symbols]
  for (;;) {
    let best = -1
    let bestRank = Infinity
    for (let i = 0; i + 1 < pieces.length; i++) {
      const rank = ranks.get(`${pieces[i]} ${pieces[i + 1]}`)
      if (rank !== undefined && rank < bestRank) {
        bestRank = rank
        best = i
      }
    }
    if (best < 0) return pieces
    pieces = [...pieces.slice(0, best), pieces[best] + pieces[best + 1], ...pieces.slice(best + 2)]
  }
}

/**
 * Words to grow merges from: the English word list in each `variants` form, then every lowercase
 * letter string by length (a..z, aa..zz, ...) so that any vocabulary size can be reached.
 */
export function * mergeWords (variants: ReadonlyArray<(word: string) => string[]>): Generator<string[]> {
  for (const variant of variants) {
    for (const word of ENGLISH_WORDS) yield variant(word)
  }
  const letters = 'abcdefghijklmnopqrstuvwxyz'
  for (let length = 2; length <= 6; length++) {
    const count = letters.length ** length
    for (let n = 0; n < count; n++) {
      let word = ''
      for (let k = 0, rest = n; k < length; k++, rest = Math.floor(rest / letters.length)) word = letters[rest % letters.length] + word
      for (const variant of variants) yield variant(word)
    }
  }
}

/** Added-token entry of a `tokenizer.json`. */
export function addedToken (id: number, content: string, normalized: boolean): object {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized, special: true }
}
