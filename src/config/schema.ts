/**
 * The one schema for everything `new IpfsAccelerate(resources, metadata)` accepts. Keys are spelled as
 * in the seed (snake_case). Every key has a default named in `defaults.ts`; `docs/configuration.md`
 * documents each one and a test keeps the two in step.
 */
import { z } from 'zod'
import { parseSize } from './units.js'
import * as D from './defaults.js'
import { PRECISIONS, DEVICES, ENDPOINT_TYPES } from './constants.js'

const SIZE_MESSAGE = 'expected a size such as 1048576, "512MiB" or "8GB"'
// The same message for a value of the wrong type (`[]`, `true`) as for an unreadable string.
const size = z.union([z.string(), z.number()], { error: SIZE_MESSAGE }).refine(v => parseSize(v) !== undefined, { message: SIZE_MESSAGE })

const url = z.string().refine(v => {
  try {
    const u = new URL(v)
    return u.protocol === 'http:' || u.protocol === 'https:'
  } catch {
    return false
  }
}, { message: 'expected an http:// or https:// URL' })

export { PRECISIONS, DEVICES, ENDPOINT_TYPES } from './constants.js'
export type { Precision, DeviceName, EndpointType, Task } from './constants.js'

export const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARNING', 'WARN', 'ERROR', 'CRITICAL', 'FATAL', 'SILENT'] as const

/** A file or folder path: not empty, and without NUL (which every file-system call refuses with a TypeError). */
const path = z.string().min(1).refine(value => !value.includes('\0'), 'must not contain a NUL character')

export const ipfsSchema = z.strictObject({
  gateway: url.optional(),
  local_node: url.optional(),
  timeout: z.number().positive().max(86_400).default(D.DEFAULT_IPFS_TIMEOUT_S),
  retry_count: z.number().int().min(0).max(100).default(D.DEFAULT_IPFS_RETRY_COUNT),
  enable_local_gateway: z.boolean().default(D.DEFAULT_ENABLE_LOCAL_GATEWAY),
  repo: path.optional(),
  cid_version: z.union([z.literal(0), z.literal(1)], { error: 'expected 0 or 1' }).default(D.DEFAULT_CID_VERSION)
})

export const hardwareSchema = z.strictObject({
  device: z.enum(DEVICES).default('auto'),
  prefer_cuda: z.boolean().default(D.DEFAULT_PREFER_CUDA),
  allow_openvino: z.boolean().default(true),
  allow_mps: z.boolean().default(true),
  allow_rocm: z.boolean().default(true),
  allow_qualcomm: z.boolean().default(false),
  allow_webgpu: z.boolean().default(false),
  precision: z.enum(PRECISIONS).default(D.DEFAULT_PRECISION),
  mixed_precision: z.boolean().default(false),
  batch_size: z.number().int().min(1).max(4096).default(D.DEFAULT_BATCH_SIZE),
  max_memory: size.optional(),
  threads: z.number().int().min(1).max(1024).optional()
})

export const performanceSchema = z.strictObject({
  enable_caching: z.boolean().default(true),
  cache_size: size.default(D.DEFAULT_CACHE_SIZE),
  enable_prefetch: z.boolean().default(true),
  parallel_requests: z.number().int().min(1).max(1024).default(D.DEFAULT_PARALLEL_REQUESTS),
  batch_window_ms: z.number().min(0).max(10_000).default(D.DEFAULT_BATCH_WINDOW_MS)
})

export const loggingSchema = z.strictObject({
  level: z.string().transform(v => v.toUpperCase()).pipe(z.enum(LOG_LEVELS)).default('INFO'),
  enable_performance_logging: z.boolean().default(false),
  log_file: path.optional()
})

const endpointSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(0).max(65_535),
  protocol: z.enum(['http', 'https']).default('http'),
  api_key: z.string().min(1).optional()
})

export const endpointsSchema = z.strictObject({
  local: endpointSchema.optional(),
  remote: endpointSchema.optional()
})

export const modelSchema = z.strictObject({
  provider: z.enum(['huggingface', 'local', 'ipfs']).default('huggingface'),
  /** Where the model lives: a hub repository, a local folder or an ipfs:// CID. Defaults to the key itself. */
  source: z.string().min(1).optional(),
  cache_dir: path.optional(),
  precision: z.enum(PRECISIONS).optional(),
  batch_size: z.number().int().min(1).max(4096).optional(),
  max_length: z.number().int().min(1).max(1_000_000).optional(),
  endpoint_type: z.enum(ENDPOINT_TYPES).optional(),
  revision: z.string().min(1).optional()
})

export const hubSchema = z.strictObject({
  remote_host: url.default(D.DEFAULT_HUB_HOST),
  allow_remote: z.boolean().default(true),
  cache_dir: path.optional()
})

export const resourcesSchema = z.strictObject({
  ipfs: ipfsSchema.default(() => ipfsSchema.parse({})),
  hardware: hardwareSchema.default(() => hardwareSchema.parse({})),
  performance: performanceSchema.default(() => performanceSchema.parse({})),
  logging: loggingSchema.default(() => loggingSchema.parse({})),
  endpoints: endpointsSchema.default({}),
  models: z.record(z.string().min(1), modelSchema).default({}),
  model_aliases: z.record(z.string().min(1), z.string().min(1)).default({}),
  hub: hubSchema.default(() => hubSchema.parse({}))
})

/** What a user may pass: every key optional. */
export type ResourcesInit = z.input<typeof resourcesSchema>
/** What the rest of the code reads: every default filled in, deep-frozen. */
export type ResolvedConfig = Readonly<z.output<typeof resourcesSchema>>
export type IpfsConfig = ResolvedConfig['ipfs']
export type HardwareConfig = ResolvedConfig['hardware']
export type PerformanceConfig = ResolvedConfig['performance']
export type LoggingConfig = ResolvedConfig['logging']
export type ModelConfig = z.output<typeof modelSchema>

/** Project metadata: free-form JSON-like values, kept as given. */
export const metadataSchema = z.record(z.string(), z.unknown()).default({})
export type Metadata = Record<string, unknown>
