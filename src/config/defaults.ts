/** Defaults of every config key, as named constants (the schema and docs/configuration.md read these). */

/** `ipfs.timeout`: seconds allowed for each network call to a store. */
export const DEFAULT_IPFS_TIMEOUT_S = 30
/** `ipfs.retry_count`: attempts after the first for a failed network call. */
export const DEFAULT_IPFS_RETRY_COUNT = 3
/** `ipfs.enable_local_gateway`: prefer a gateway on localhost when one answers. */
export const DEFAULT_ENABLE_LOCAL_GATEWAY = true
/** `ipfs.cid_version`: 0 reproduces `ipfs add`, 1 reproduces `ipfs add --cid-version 1`. */
export const DEFAULT_CID_VERSION = 0 as const

/** `hardware.prefer_cuda`: use CUDA when it is present and usable. */
export const DEFAULT_PREFER_CUDA = true
/** `hardware.precision`: fp32 is the only variant every model ships and every CPU runs exactly. */
export const DEFAULT_PRECISION = 'fp32' as const
/** `hardware.batch_size`: largest dynamic batch per model. */
export const DEFAULT_BATCH_SIZE = 1

/** `performance.cache_size`: result cache bound. */
export const DEFAULT_CACHE_SIZE = '1GB'
/** `performance.parallel_requests`: inference calls in flight at once. */
export const DEFAULT_PARALLEL_REQUESTS = 4
/** `performance.batch_window_ms`: how long the batcher waits for more requests to join a batch. */
export const DEFAULT_BATCH_WINDOW_MS = 2

/** `hub.remote_host`: where hub model ids are downloaded from. */
export const DEFAULT_HUB_HOST = 'https://huggingface.co/'
