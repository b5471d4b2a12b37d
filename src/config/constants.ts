/**
 * The enumerations of the config schema, without zod: the inference worker needs these names, and
 * importing them from here keeps zod out of its start-up (measured ~100 ms of worker start).
 */

export const PRECISIONS = ['fp32', 'fp16', 'int8', 'q8', 'uint8', 'q4', 'q4f16', 'bnb4'] as const
export type Precision = typeof PRECISIONS[number]

export const DEVICES = ['auto', 'cpu', 'cuda', 'rocm', 'openvino', 'mps', 'coreml', 'qualcomm', 'webgpu', 'webnn'] as const
export type DeviceName = typeof DEVICES[number]

export const ENDPOINT_TYPES = [
  'auto',
  'text_embedding',
  'text_generation',
  'image_classification',
  'audio_transcription',
  'zero_shot_image_classification'
] as const
export type EndpointType = typeof ENDPOINT_TYPES[number]
export type Task = Exclude<EndpointType, 'auto'>
