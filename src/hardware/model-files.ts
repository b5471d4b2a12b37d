/**
 * The weight variants a model folder really holds. transformers.js picks a file by dtype suffix only
 * (`onnx/model_fp16.onnx` for fp16) and never converts weights, so device and dtype selection must know
 * what is on disk before it chooses.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { PRECISIONS, type Precision } from '../config/constants.js'
import { ModelLoadError } from '../errors.js'

/** A transformers.js dtype. The config's precisions are exactly these names. */
export type Dtype = Precision

/** Every dtype, in the order `availableDtypes` lists them. */
export const DTYPES: readonly Dtype[] = PRECISIONS

/** File-name suffix per dtype, as transformers.js 4.x names weight files (`model${suffix}.onnx`). */
export const DTYPE_SUFFIXES: Readonly<Record<Dtype, string>> = Object.freeze({
  fp32: '',
  fp16: '_fp16',
  int8: '_int8',
  q8: '_quantized',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4'
})

/** Where transformers.js looks for ONNX files inside a model folder by default. */
export const DEFAULT_ONNX_SUBFOLDER = 'onnx'

export interface ModelFilesOptions {
  /** Folder under the model folder that holds the `.onnx` files (transformers.js' `subfolder`). */
  subfolder?: string
}

/** Where transformers.js reads the weight file `baseName` at `dtype`: `<modelDir>/onnx/<baseName><suffix>.onnx`. */
export function weightFilePath (modelDir: string, baseName: string, dtype: Dtype, options: ModelFilesOptions = {}): string {
  return join(modelDir, options.subfolder ?? DEFAULT_ONNX_SUBFOLDER, `${baseName}${DTYPE_SUFFIXES[dtype]}.onnx`)
}

/**
 * Splits a weight file name into its base name and dtype: `model_q4f16.onnx` is `model` at q4f16,
 * `decoder_model_merged.onnx` is `decoder_model_merged` at fp32. Undefined for files that are not `.onnx`.
 */
export function dtypeOfFile (fileName: string): { baseName: string, dtype: Dtype } | undefined {
  if (!fileName.endsWith('.onnx')) return undefined
  const stem = fileName.slice(0, -'.onnx'.length)
  // Longest suffix first, so `_q4f16` is never read as `_q4` + `f16`.
  const suffixed = DTYPES.filter(d => DTYPE_SUFFIXES[d] !== '')
    .sort((a, b) => DTYPE_SUFFIXES[b].length - DTYPE_SUFFIXES[a].length)
    .find(d => stem.endsWith(DTYPE_SUFFIXES[d]) && stem.length > DTYPE_SUFFIXES[d].length)
  if (suffixed !== undefined) return { baseName: stem.slice(0, -DTYPE_SUFFIXES[suffixed].length), dtype: suffixed }
  return { baseName: stem, dtype: 'fp32' }
}

async function listOnnxFolder (modelDir: string, subfolder: string): Promise<string[]> {
  try {
    return await readdir(join(modelDir, subfolder))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return []
    throw new ModelLoadError(`cannot read ${join(modelDir, subfolder)}: ${(err as Error).message}`, { cause: err, context: { file: join(modelDir, subfolder) } })
  }
}

/**
 * The dtypes for which every named weight file exists on disk (`onnx/<base><suffix>.onnx`), in `DTYPES`
 * order. For a multi-file model (Whisper: `encoder_model` and `decoder_model_merged`) pass all base
 * names: a dtype counts only when each of them has it.
 */
export async function availableDtypes (modelDir: string, baseName: string | readonly string[] = 'model', options: ModelFilesOptions = {}): Promise<Dtype[]> {
  const names = new Set(await listOnnxFolder(modelDir, options.subfolder ?? DEFAULT_ONNX_SUBFOLDER))
  const bases = typeof baseName === 'string' ? [baseName] : baseName
  return DTYPES.filter(d => bases.length > 0 && bases.every(b => names.has(`${b}${DTYPE_SUFFIXES[d]}.onnx`)))
}

/**
 * Bytes that loading a model at `dtype` reads into memory: its `.onnx` files of that dtype plus their
 * external-data files (`model.onnx_data`, `model.onnx_data_1`, ...). With `baseNames`, only those files
 * count (a repository may hold several decoder exports of which one is loaded); without, every file of the
 * dtype does. Throws ModelLoadError when no file of that dtype exists.
 */
export async function estimateModelBytes (modelDir: string, dtype: Dtype, baseNames?: readonly string[], options: ModelFilesOptions = {}): Promise<number> {
  const subfolder = options.subfolder ?? DEFAULT_ONNX_SUBFOLDER
  const dir = join(modelDir, subfolder)
  const files = await listOnnxFolder(modelDir, subfolder)
  const weights = files.filter(f => {
    const parsed = dtypeOfFile(f)
    return parsed !== undefined && parsed.dtype === dtype && (baseNames === undefined || baseNames.includes(parsed.baseName))
  })
  if (weights.length === 0 || (baseNames !== undefined && weights.length < new Set(baseNames).size)) {
    const wanted = (baseNames ?? ['model']).map(b => `${subfolder}/${b}${DTYPE_SUFFIXES[dtype]}.onnx`).join(', ')
    throw new ModelLoadError(`model folder ${modelDir} has no ${dtype} weights (looked for ${wanted})`, { context: { file: modelDir, dtype } })
  }
  let total = 0
  for (const weight of weights) {
    const dataFile = new RegExp(`^${escapeRegExp(weight)}_data(?:_\\d+)?$`)
    for (const f of [weight, ...files.filter(f => dataFile.test(f))]) total += (await stat(join(dir, f))).size
  }
  return total
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
