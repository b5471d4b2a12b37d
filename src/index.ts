/** The public surface of ipfs-accelerate. */
export { IpfsAccelerate, type ProcessOptions, type InferenceResult, type IpfsAccelerateOptions, type InitEndpointsResources, type DeferredEndpoint } from './accelerator.js'
export { initialize, getInstance, resetInstance } from './instance.js'
export * from './errors.js'
export { resolveConfig, type ResolveOptions } from './config/resolve.js'
export type { ResourcesInit, ResolvedConfig, Metadata, EndpointType, Task, Precision, DeviceName } from './config/schema.js'
export { HardwareDetection, type HardwareReport } from './hardware/index.js'
export type { EndpointInfo, ModelProgressEvent } from './inference/protocol.js'
export { buildTinyModel } from './models/tiny/index.js'
export { TINY_FAMILIES, type TinyFamily, type TinyModelOptions, type TinyModelInfo } from './models/tiny/options.js'
export type { IpfsServer, IpfsServerInit } from './server/create-ipfs-server.js'
export type { ContentRouter } from './content/content-router.js'
export type { HeliaStore } from './content/helia-store.js'

/**
 * Serves a store (`(await acc.content()).helia`) on 127.0.0.1 as a trustless gateway and the Kubo RPC
 * subset (docs/content.md). Loaded on first use: inference alone never pays for the HTTP server.
 */
export async function createIpfsServer (init: import('./server/create-ipfs-server.js').IpfsServerInit): Promise<import('./server/create-ipfs-server.js').IpfsServer> {
  return await (await import('./server/create-ipfs-server.js')).createIpfsServer(init)
}
