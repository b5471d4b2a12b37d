/**
 * A BERT-style (uncased) WordPiece tokenizer small enough for a tiny model, laid out so that the
 * special tokens and a few words keep their bert-base-uncased ids: [PAD]=0, [UNK]=100, [CLS]=101,
 * [SEP]=102, [MASK]=103, the printable ASCII characters from 999, and e.g. 2054 'what', 2003 'is',
 * 1999 'in', 2023 'this', 3746 'image'. Ids written in examples and fixtures for the real model then
 * mean the same thing here. Every lowercase ASCII character and its `##` continuation is in the
 * vocabulary, so any lowercase English text tokenizes without [UNK].
 */
import { ENGLISH_WORDS } from './english-words.js'

/** Ids shared with bert-base-uncased. */
export const BERT_SPECIAL_IDS = { pad: 0, unk: 100, cls: 101, sep: 102, mask: 103 } as const

/** Words pinned to their bert-base-uncased ids (when the vocabulary is large enough to hold them). */
const PINNED_WORDS: ReadonlyArray<readonly [string, number]> = [
  ['the', 1996], ['of', 1997], ['and', 1998], ['in', 1999], ['to', 2000], ['was', 2001], ['he', 2002],
  ['is', 2003], ['as', 2004], ['for', 2005], ['on', 2006], ['with', 2007], ['that', 2008], ['it', 2009],
  ['this', 2023], ['what', 2054], ['image', 3746]
]

/** First id of the single characters, as in bert-base-uncased. */
const FIRST_CHAR_ID = 999

/** Printable ASCII without upper case (the normalizer lower-cases first): `!` .. `~`, 68 characters. */
const CHARACTERS: readonly string[] = Array.from({ length: 126 - 33 + 1 }, (_, i) => String.fromCharCode(33 + i))
  .filter(c => c < 'A' || c > 'Z')

/** The smallest vocabulary that still holds the specials, every character and every continuation. */
export const MIN_WORDPIECE_VOCAB = FIRST_CHAR_ID + 2 * CHARACTERS.length

/** The vocabulary, index = id. Unused slots are `[unused{n}]` as in BERT. */
export function buildWordPieceVocab (vocabSize: number): string[] {
  if (vocabSize < MIN_WORDPIECE_VOCAB) throw new RangeError(`a WordPiece vocabulary needs at least ${MIN_WORDPIECE_VOCAB} entries`)
  const vocab: Array<string | undefined> = new Array(vocabSize).fill(undefined)
  vocab[BERT_SPECIAL_IDS.pad] = '[PAD]'
  vocab[BERT_SPECIAL_IDS.unk] = '[UNK]'
  vocab[BERT_SPECIAL_IDS.cls] = '[CLS]'
  vocab[BERT_SPECIAL_IDS.sep] = '[SEP]'
  vocab[BERT_SPECIAL_IDS.mask] = '[MASK]'
  CHARACTERS.forEach((c, i) => {
    vocab[FIRST_CHAR_ID + i] = c
    vocab[FIRST_CHAR_ID + CHARACTERS.length + i] = `##${c}`
  })
  const placed = new Set(vocab.filter((t): t is string => t !== undefined))
  for (const [word, id] of PINNED_WORDS) {
    if (id < vocabSize) {
      vocab[id] = word
      placed.add(word)
    }
  }
  // Remaining words (and pinned ones that did not fit) take the free ids after the characters, in order.
  let next = MIN_WORDPIECE_VOCAB
  for (const word of ENGLISH_WORDS) {
    if (placed.has(word)) continue
    while (next < vocabSize && vocab[next] !== undefined) next++
    if (next >= vocabSize) break
    vocab[next] = word
    placed.add(word)
  }
  let unused = 0
  return vocab.map(token => token ?? `[unused${unused++}]`)
}

/** `tokenizer.json` (the fast-tokenizer format transformers.js reads) for `vocab`. */
export function wordPieceTokenizerJson (vocab: readonly string[]): object {
  const special = (id: number): object => ({
    id, content: vocab[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true
  })
  const cls = vocab[BERT_SPECIAL_IDS.cls]
  const sep = vocab[BERT_SPECIAL_IDS.sep]
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: Object.values(BERT_SPECIAL_IDS).sort((a, b) => a - b).map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: sep, type_id: 1 } }
      ],
      special_tokens: {
        [cls]: { id: cls, ids: [BERT_SPECIAL_IDS.cls], tokens: [cls] },
        [sep]: { id: sep, ids: [BERT_SPECIAL_IDS.sep], tokens: [sep] }
      }
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: vocab[BERT_SPECIAL_IDS.unk],
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((token, id) => [token, id]))
    }
  }
}

/** `tokenizer_config.json` for an uncased BertTokenizer. */
export function wordPieceTokenizerConfig (maxLength: number): object {
  return {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: true,
    strip_accents: null,
    tokenize_chinese_chars: true,
    model_max_length: maxLength,
    pad_token: '[PAD]',
    unk_token: '[UNK]',
    cls_token: '[CLS]',
    sep_token: '[SEP]',
    mask_token: '[MASK]',
    clean_up_tokenization_spaces: true
  }
}

/** `vocab.txt`, one token a line, for tools that read the slow-tokenizer format. */
export function wordPieceVocabTxt (vocab: readonly string[]): string {
  return `${vocab.join('\n')}\n`
}
