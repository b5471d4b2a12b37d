/**
 * A small builder for ONNX graphs (IR 8, opset 17) on top of `onnx-proto`, used to write the tiny
 * random-weight models that tests and benchmarks run. Weights come from a seeded generator so that the
 * same options always give the same bytes.
 */
import onnxProto from 'onnx-proto'

const { onnx } = onnxProto

export type ElemType = 'float32' | 'int64' | 'int32' | 'bool'

const ELEM: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL
}

/** A dimension: a fixed size or a symbolic name (`batch_size`, `sequence_length`). */
export type Dim = number | string

/** Deterministic pseudo-random numbers (mulberry32): same seed, same weights. */
export class SeededRandom {
  private state: number
  constructor (seed: number) {
    this.state = seed >>> 0
  }

  next (): number {
    let t = (this.state += 0x6d2b79f5)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** Approximately normal values (sum of uniforms), scaled by `std`. */
  normal (n: number, std: number): Float32Array {
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++) out[i] = (this.next() + this.next() + this.next() - 1.5) * 2 * std
    return out
  }
}

/** Attribute values: numbers are INT when whole, else FLOAT; `{ f }` forces FLOAT (e.g. alpha = 1.0). */
export type AttrValue = number | number[] | string | Float32Array | { f: number } | { floats: number[] } | { tensor: onnxProto.onnx.ITensorProto }

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = []
  private readonly initializers: onnxProto.onnx.ITensorProto[] = []
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = []
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = []
  private counter = 0
  readonly rng: SeededRandom

  constructor (readonly name: string, seed = 42) {
    this.rng = new SeededRandom(seed)
  }

  /** A fresh, unique tensor name with a readable prefix. */
  fresh (prefix: string): string {
    return `${prefix}_${this.counter++}`
  }

  input (name: string, type: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims))
    return name
  }

  output (name: string, type: ElemType, dims: Dim[]): string {
    this.outputs.push(valueInfo(name, type, dims))
    return name
  }

  /** Adds a weight or constant tensor; returns its name. */
  init (name: string, type: ElemType, dims: number[], values: ArrayLike<number> | ArrayLike<bigint>): string {
    const tensor: onnxProto.onnx.ITensorProto = { name, dims, dataType: ELEM[type] }
    if (type === 'float32') tensor.rawData = bytesOf(Float32Array.from(values as ArrayLike<number>))
    else if (type === 'int64') tensor.rawData = bytesOf(BigInt64Array.from(Array.from(values as ArrayLike<number | bigint>, v => BigInt(v))))
    else if (type === 'int32') tensor.rawData = bytesOf(Int32Array.from(values as ArrayLike<number>))
    else tensor.rawData = Uint8Array.from(values as ArrayLike<number>)
    this.initializers.push(tensor)
    return name
  }

  /** A random-normal float weight. */
  weight (name: string, dims: number[], std = 0.02): string {
    return this.init(name, 'float32', dims, this.rng.normal(dims.reduce((a, b) => a * b, 1), std))
  }

  /** A float weight filled with one value (layer-norm scales, zero biases). */
  fill (name: string, dims: number[], value: number): string {
    return this.init(name, 'float32', dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(value))
  }

  /** An int64 constant (shapes, axes, indices). */
  ints (values: number[], name = this.fresh('const')): string {
    return this.init(name, 'int64', [values.length], values)
  }

  /** A scalar float constant. */
  scalar (value: number, name = this.fresh('scalar')): string {
    return this.init(name, 'float32', [], [value])
  }

  /** Adds a node; returns its output names (one unless `outputs` says more). */
  node (opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs: number | string[] = 1): string[] {
    const outNames = typeof outputs === 'number'
      ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase()))
      : outputs
    this.nodes.push({
      opType,
      name: this.fresh(`${opType}_node`),
      input: inputs,
      output: outNames,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v))
    })
    return outNames
  }

  /** Single-output shorthand for `node()`. */
  op (opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, output?: string): string {
    return this.node(opType, inputs, attrs, output === undefined ? 1 : [output])[0]
  }

  /** Serialized ModelProto bytes. */
  toBytes (): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'ipfs-accelerate-tiny',
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs
      }
    })
    return onnx.ModelProto.encode(model).finish()
  }
}

function bytesOf (view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
}

function valueInfo (name: string, type: ElemType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map(d => typeof d === 'number' ? { dimValue: d } : { dimParam: d }) }
      }
    }
  }
}

function attribute (name: string, value: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType
  if (typeof value === 'number') {
    return Number.isInteger(value) && !Object.is(value, -0)
      ? { name, type: T.INT, i: value }
      : { name, type: T.FLOAT, f: value }
  }
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) }
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value }
  if (value instanceof Float32Array) return { name, type: T.FLOATS, floats: Array.from(value) }
  if ('f' in value) return { name, type: T.FLOAT, f: value.f }
  if ('floats' in value) return { name, type: T.FLOATS, floats: value.floats }
  return { name, type: T.TENSOR, t: value.tensor }
}
