/**
 * What ablating each component does to the output: Δloss per tag when its rank-one piece is removed
 * (scale 0, the weight edit W' = W − V[:, c] ⊗ U[c, :]), measured, not estimated.
 *
 * One ORT session serves every ablation. After each decomposed module's MatMul/Gemm the graph gets
 *
 *     y' = y − ((x · V) ⊙ mask) · U          mask: a graph input (batch, 1, C), 1 where ablated
 *
 * (x · V is viewed as (batch, tokens, C) for the product with the mask, so that exporters that flatten a
 * module's input to (batch · tokens, d_in) get the same per-row masks.)
 *
 * which equals the weight edit for the components the mask selects (y is linear in W). A batch stacks
 * the same windows of a tag once per component being ablated, so one run measures many components;
 * the base loss comes from a row group with an all-zero mask, in the same session.
 */
import * as ort from 'onnxruntime-node';
import { ScalpelError } from '../errors';
import { CancelledError, Evaluator, Progress, TokenizedDataset } from '../evaluate';
import { LanguageModel } from '../lm';
import { NodeSpec, TensorSpec, floatTensor } from '../onnx/build';
import { DataType, modelFromBytes } from '../onnx/model';
import { ModuleWeight } from '../onnx/modules';
import { GraphEdit, rewriteModel } from '../onnx/rewrite';
import { RuntimeOptions, runtimeOf } from '../runtime';

export interface AblatedModule {
  weight: ModuleWeight;
  /** (dIn, C) and (C, dOut), row-major, as the catalog stores them; absent where the factor is the identity. */
  V?: Float32Array;
  U?: Float32Array;
  components: number;
  /** The components to measure (indices into the module's C); the others are never ablated. */
  measure: number[];
}

export interface AblationOptions extends RuntimeOptions {
  /** Scored tokens per tag (default 512): the first windows of each tag's data. */
  tokens?: number;
  /** Batch rows per ORT run (default: what a 256 MB logits budget allows). */
  rows?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress & { tag: string }) => void;
}

export interface AblationResult {
  /** Per module (in input order), per measured component (in `measure` order): Δloss per tag, in nats per token. */
  deltas: Float64Array[][];
  /** Base loss per tag on the tokens used. */
  base: number[];
  /** Scored tokens per tag. */
  tokens: number[];
  seconds: number;
  runs: number;
}

const PREFIX = 'scalpel.ablate.';

const int64Tensor = (name: string, values: number[]): TensorSpec => ({ name, dims: [values.length], dataType: DataType.INT64, data: { raw: new Uint8Array(BigInt64Array.from(values, BigInt).buffer) } });
const maskName = (w: ModuleWeight) => `${PREFIX}${w.module}.mask`;

/** The graph edit: every module's ablation path, its mask a graph input. */
function ablationEdit(lm: LanguageModel, modules: AblatedModule[]): GraphEdit {
  const producers = new Map<string, number>();
  lm.onnx.nodes.forEach((n, i) => n.outputs.forEach((o) => producers.set(o, i)));
  const insertAfter: NonNullable<GraphEdit['insertAfter']> = [];
  const addInitializers: TensorSpec[] = [];
  for (const m of modules) {
    const w = m.weight;
    const after = producers.get(w.outputTensor);
    if (after === undefined) throw new ScalpelError(`module ${w.module}: no node produces ${w.outputTensor}`, lm.file);
    const n = (x: string) => `${PREFIX}${w.module}.${x}`;
    const op = (opType: string, inputs: string[], output: string, attributes?: NodeSpec['attributes']): NodeSpec => ({ name: `scalpel/ablate/${w.module}/${output.slice(PREFIX.length + w.module.length + 1)}`, opType, inputs, outputs: [output], attributes });
    if (m.V) addInitializers.push(floatTensor(n('V'), [w.dIn, m.components], m.V));
    if (m.U) addInitializers.push(floatTensor(n('U'), [m.components, w.dOut], m.U));
    addInitializers.push(
      int64Tensor(n('first'), [0]),
      int64Tensor(n('rest'), [-1, m.components]),
    );
    // A module computed in half precision (its weight stored so and read without a Cast) is ablated in float32.
    const stored = lm.onnx.initializers.get(w.initializer)?.dataType;
    const half = (stored === DataType.FLOAT16 || stored === DataType.BFLOAT16) && !lm.onnx.nodes.some((x) => x.opType === 'Cast' && x.inputs[0] === w.initializer) ? stored : undefined;
    const cast = (from: string, to: number, output: string) => op('Cast', [from], output, [{ name: 'to', i: to }]);
    const x = half ? n('x') : w.inputTensor;
    // An identity factor is no product: x · I = x, z · I = z.
    insertAfter.push({
      after,
      renameOutputs: { [w.outputTensor]: n('kept') },
      nodes: [
        ...(half ? [cast(w.inputTensor, DataType.FLOAT, n('x'))] : []),
        m.V ? op('MatMul', [x, n('V')], n('a')) : op('Identity', [x], n('a')),
        // (batch, tokens, C), whatever the leading dimensions of a: batch from the mask's first dimension.
        op('Shape', [n('a')], n('a_shape')),
        op('Shape', [maskName(w)], n('mask_shape')),
        op('Gather', [n('mask_shape'), n('first')], n('batch')),
        op('Concat', [n('batch'), n('rest')], n('rows_shape'), [{ name: 'axis', i: 0 }]),
        op('Reshape', [n('a'), n('rows_shape')], n('a_rows')),
        op('Mul', [n('a_rows'), maskName(w)], n('z_rows')),
        op('Reshape', [n('z_rows'), n('a_shape')], n('z')),
        m.U ? op('MatMul', [n('z'), n('U')], n(half ? 'removed_f' : 'removed')) : op('Identity', [n('z')], n(half ? 'removed_f' : 'removed')),
        ...(half ? [cast(n('removed_f'), half, n('removed'))] : []),
        op('Sub', [n('kept'), n('removed')], w.outputTensor),
      ],
    });
  }
  const addInputs = modules.map((m) => ({ name: maskName(m.weight), elemType: DataType.FLOAT, shape: ['batch', 1, m.components] as (number | string)[] }));
  return { insertAfter, addInitializers, addInputs };
}

/** Measures Δloss of ablating each `measure`d component of each module on each tagged dataset. */
export async function ablationEffects(lm: LanguageModel, modules: AblatedModule[], data: { tag: string; data: TokenizedDataset }[], opts: AblationOptions = {}): Promise<AblationResult> {
  const started = performance.now();
  const ctx = lm.contextLength;
  const budget = opts.tokens ?? 512;
  const jobs = modules.flatMap((m, mi) => m.measure.map((c, j) => ({ mi, c, j })));
  const deltas = modules.map((m) => m.measure.map(() => new Float64Array(data.length)));
  const model = modelFromBytes(rewriteModel(lm.onnx, ablationEdit(lm, modules)), lm.file);
  // Masks at zero (the base model) for runs that feed none, such as the vocabulary probe.
  const zeros = Object.fromEntries(modules.map((m) => [maskName(m.weight), new ort.Tensor('float32', new Float32Array(m.components), [1, 1, m.components])]));
  const ev = await Evaluator.create(lm, { ...runtimeOf(opts), model, batchSize: 1, feeds: zeros });
  const rows = opts.rows ?? Math.max(1, Math.floor((256 << 20) / (2 * 4 * ctx * ev.vocabSize)));
  const base: number[] = [];
  const tokens: number[] = [];
  let runs = 0;
  try {
    for (let ti = 0; ti < data.length; ti++) {
      const ids = data[ti].data.ids.subarray(0, Math.min(data[ti].data.ids.length, budget + 1));
      const windows: Int32Array[] = [];
      for (let s = 0; s < ids.length - 1; s += ctx) windows.push(ids.subarray(s, Math.min(ids.length, s + ctx + 1)));
      const scored = ids.length - 1;
      tokens.push(scored);
      if (!windows.length) throw new ScalpelError(`dataset ${data[ti].data.name} has no tokens to score`);
      const groupsPerRun = Math.max(1, Math.floor(rows / windows.length));
      // Row group g of a run ablates the component of job g (or nothing, for the base group).
      const run = async (group: ({ mi: number; c: number } | undefined)[]): Promise<number[]> => {
        if (opts.signal?.aborted) throw new CancelledError();
        const batch = group.flatMap(() => windows);
        const feeds: Record<string, ort.Tensor> = {};
        modules.forEach((m, mi) => {
          const mask = new Float32Array(batch.length * m.components);
          group.forEach((job, g) => {
            if (job?.mi !== mi) return;
            for (let w = 0; w < windows.length; w++) mask[(g * windows.length + w) * m.components + job.c] = 1;
          });
          feeds[maskName(m.weight)] = new ort.Tensor('float32', mask, [batch.length, 1, m.components]);
        });
        const { nll, length } = await ev.scoreBatch(batch, feeds);
        runs++;
        return group.map((_, g) => {
          let sum = 0;
          windows.forEach((win, w) => {
            const row = (g * windows.length + w) * length;
            for (let t = 0; t + 1 < win.length; t++) sum += nll[row + t];
          });
          return sum / scored;
        });
      };
      [base[ti]] = await run([undefined]);
      for (let i = 0; i < jobs.length; i += groupsPerRun) {
        const chunk = jobs.slice(i, i + groupsPerRun);
        const losses = await run(chunk);
        chunk.forEach((job, g) => (deltas[job.mi][job.j][ti] = losses[g] - base[ti]));
        opts.onProgress?.({ done: Math.min(jobs.length, i + groupsPerRun), total: jobs.length, tag: data[ti].tag });
      }
    }
  } finally {
    await ev.release();
  }
  return { deltas, base, tokens, seconds: (performance.now() - started) / 1000, runs };
}
