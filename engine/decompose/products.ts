/**
 * Products with a weight matrix for the truncated SVD, run by onnxruntime (its multithreaded GEMM is some
 * tens of times faster than a JavaScript loop): one session per direction, with symbolic shapes, serving
 * every matrix of a decomposition. Products are float32, as the weights are; the SVD's own arithmetic
 * (orthonormalization, the small SVD) stays float64.
 */
import * as ort from 'onnxruntime-node';
import { buildModel } from '../onnx/build';
import { DataType } from '../onnx/model';
import { RuntimeOptions, startSession } from '../runtime';
import { MatrixProducts } from './svd';

export class GemmSessions {
  private constructor(private readonly plain: ort.InferenceSession, private readonly transposed: ort.InferenceSession) {}

  static async create(rt: RuntimeOptions = {}): Promise<GemmSessions> {
    const graph = (transA: number) => buildModel({
      initializers: [],
      inputs: [{ name: 'a', elemType: DataType.FLOAT, shape: ['m', 'n'] }, { name: 'x', elemType: DataType.FLOAT, shape: ['k', 'l'] }],
      nodes: [{ name: 'product', opType: 'Gemm', inputs: ['a', 'x'], outputs: ['y'], attributes: [{ name: 'transA', i: transA }] }],
      outputs: [{ name: 'y', elemType: DataType.FLOAT, shape: ['r', 'l'] }],
    });
    return new GemmSessions(await startSession(graph(0), rt, 'the SVD product graph'), await startSession(graph(1), rt, 'the SVD product graph'));
  }

  /** Products with the row-major (m, n) float32 matrix `a`. */
  of(a: Float32Array, m: number, n: number): MatrixProducts {
    const matrix = new ort.Tensor('float32', a, [m, n]);
    const run = async (s: ort.InferenceSession, x: Float64Array, rows: number, l: number) => {
      const y = await s.run({ a: matrix, x: new ort.Tensor('float32', Float32Array.from(x), [rows, l]) });
      return Float64Array.from(y.y.data as Float32Array);
    };
    return { times: (x, l) => run(this.plain, x, n, l), timesTransposed: (x, l) => run(this.transposed, x, m, l) };
  }

  async release(): Promise<void> {
    await this.plain.release();
    await this.transposed.release();
  }
}
