/**
 * Gated edits: an edit that acts only where its component is causally important. For a module
 * y = x·W (+ b) and gated components c with read vectors V_c, write vectors U_c and causal-importance
 * functions g_c (the catalog's CI MLPs, docs/components.md):
 *
 *     a_c    = x·V_c
 *     gate_c = g_c(a_c)                 `gated`              (soft: the edit follows the CI)
 *     gate_c = [g_c(a_c) > t]           `gated where ci > t` (hard: all of the edit where CI exceeds t, none elsewhere)
 *     y'     = y + Σ_c (s_c − 1) · gate_c · a_c · U_c
 *
 * With the gate at 1 this is exactly the weight edit W' = W + (s − 1)·V_c ⊗ U_c. Both gates are one
 * formula, gate = [g > t] · (1 + soft·(g − 1)) with soft ∈ {0, 1} and t = −1 for the soft gate (CI ≥ 0),
 * so every gated component of a module shares one batched path: V as (d_in, k), U as (k, d_out), the
 * k CI MLPs, and a scale vector (k). The path is spliced in right after the module's MatMul/Gemm,
 * whose output is renamed; everything else in the checkpoint is copied as bytes.
 *
 * The scale vector is an initializer in a written checkpoint and a graph input in a preview, so one
 * session serves every scale (the weight-as-input scheme of preview.ts: s = 1 gives the base model).
 */
import { ciGraph } from '../catalog/ci';
import { ScalpelError } from '../errors';
import { NodeSpec, TensorSpec, floatTensor } from '../onnx/build';
import { DataType, OnnxModel, modelFromBytes, readFloatTensor } from '../onnx/model';
import { ModuleWeight, missingModule, moduleWeights } from '../onnx/modules';
import { GraphEdit, rewriteModel } from '../onnx/rewrite';
import type { GraphAdditions } from '../onnx/write';
import { Component, Origin } from './weights';

/** Where a gated edit acts: `ci` (gate = CI) or `threshold` (gate = [CI > threshold]). */
export type Gate = { kind: 'ci' } | { kind: 'threshold'; threshold: number };

export function gateText(g: Gate): string {
  return g.kind === 'ci' ? 'gated' : `gated where ci > ${g.threshold}`;
}

export interface GatedComponent {
  component: Component;
  gate: Gate;
  origin?: Origin;
}

/** One module's batched gated path. */
export interface GatedModule {
  weight: ModuleWeight;
  components: GatedComponent[];
  /** The scale vector's tensor name (k values, one per component, in `components` order). */
  scaleTensor: string;
  /** The tensor the gates come out as (…, k): what the debugger shows per token. */
  gateTensor: string;
  /** The module's product before the gated add (the MatMul/Gemm output, renamed). */
  ungatedTensor: string;
}

const PREFIX = 'scalpel.gate.';

const slotKey = (key: string, gate: Gate) => `${key} ${gateText(gate)}`;

/** The gated paths of a set of components, grouped by module. */
export class GatedPaths {
  readonly modules: GatedModule[] = [];
  private readonly slots = new Map<string, { module: GatedModule; index: number }>();

  constructor(
    readonly model: OnnxModel,
    gated: GatedComponent[],
  ) {
    const weights = new Map(moduleWeights(model).map((m) => [m.module, m]));
    for (const g of gated) {
      const { component, origin } = g;
      // Alternative edits (run one at a time) may gate the same component the same way: one slot serves them.
      if (this.slots.has(slotKey(component.key, g.gate))) continue;
      if (!component.ci) throw new ScalpelError(`component ${component.key} has no causal-importance function in its catalog, so it cannot be gated`, origin?.file, origin);
      let m = this.modules.find((x) => x.weight.module === component.module);
      if (!m) {
        const weight = weights.get(component.module);
        if (!weight) throw new ScalpelError(`${missingModule(model, component.module)} (component ${component.key})`, origin?.file, origin);
        const base = `${PREFIX}${weight.module}.`;
        m = { weight, components: [], scaleTensor: `${base}scale`, gateTensor: `${base}gate`, ungatedTensor: `${weight.outputTensor}.ungated` };
        this.modules.push(m);
      }
      if (m.components.length && m.components[0].component.ci!.hidden !== component.ci.hidden) {
        throw new ScalpelError(`components of ${component.module} have CI functions of different sizes`, origin?.file, origin);
      }
      this.slots.set(slotKey(component.key, g.gate), { module: m, index: m.components.length });
      m.components.push(g);
    }
  }

  /** The scale tensor and position of a component gated this way, if it is one of these. */
  slot(key: string, gate: Gate): { tensor: string; index: number; size: number } | undefined {
    const s = this.slots.get(slotKey(key, gate));
    return s && { tensor: s.module.scaleTensor, index: s.index, size: s.module.components.length };
  }

  get scaleTensors(): string[] {
    return this.modules.map((m) => m.scaleTensor);
  }

  /**
   * Edited tensors (`WeightEditor.weights`) as a written checkpoint takes them: base initializers
   * patched in place, and the gated paths added with their scale vectors.
   */
  checkpoint(weights: Map<string, Float32Array>): { patches: Map<string, Float32Array>; graph?: GraphAdditions } {
    const scales = new Set(this.scaleTensors);
    const patches = new Map([...weights].filter(([name]) => !scales.has(name)));
    return this.modules.length ? { patches, graph: this.graphEdit(weights) } : { patches };
  }

  /**
   * The graph edit that adds every path; `scales` holds each module's scale vector by tensor name
   * (missing: all ones, the identity).
   */
  graphEdit(scales: Map<string, Float32Array> = new Map()): Required<GraphAdditions> {
    const opset = this.model.opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0;
    if (this.modules.length && opset < 13) throw new ScalpelError(`gated edits need ONNX opset 13 or later; the model has opset ${opset}`, this.model.file);
    const producers = new Map<string, number>();
    this.model.nodes.forEach((n, i) => n.outputs.forEach((o) => producers.set(o, i)));
    const insertAfter: GraphEdit['insertAfter'] & object = [];
    const addInitializers: TensorSpec[] = [];
    for (const m of this.modules) {
      const after = producers.get(m.weight.outputTensor)!;
      const path = modulePath(m, scales.get(m.scaleTensor));
      insertAfter.push({ after, renameOutputs: { [m.weight.outputTensor]: m.ungatedTensor }, nodes: path.nodes });
      addInitializers.push(...path.initializers);
    }
    return { insertAfter, addInitializers };
  }
}

/** Whether an initializer belongs to a gated path (`scalpel.gate.MODULE.*`). */
export function isGateTensor(name: string): boolean {
  return name.startsWith(PREFIX);
}

/** A gated path as a written checkpoint carries it: per component, its read vector, scale and gate. */
export interface WrittenGatedPath {
  module: string;
  components: { v: Float32Array; scale: number; gate: Gate }[];
}

/** The gated paths of a checkpoint (`scalpel apply` of gated edits), read back from their initializers. */
export function readGatedPaths(model: OnnxModel): WrittenGatedPath[] {
  const out: WrittenGatedPath[] = [];
  for (const name of model.initializers.keys()) {
    if (!isGateTensor(name) || !name.endsWith('.scale')) continue;
    const base = name.slice(0, -'scale'.length);
    const module = base.slice(PREFIX.length, -1);
    const need = (x: string) => {
      if (!model.initializers.has(base + x)) throw new ScalpelError(`gated path of ${module} has no ${base + x}`, model.file);
      return readFloatTensor(model, base + x);
    };
    const [scale, threshold, soft, V] = [need('scale'), need('threshold'), need('soft'), need('V')];
    const k = scale.length;
    out.push({
      module,
      components: Array.from(scale, (s, j) => ({
        v: Float32Array.from({ length: V.length / k }, (_, i) => V[i * k + j]),
        scale: s,
        gate: soft[j] === 1 ? { kind: 'ci' as const } : { kind: 'threshold' as const, threshold: threshold[j] },
      })),
    });
  }
  return out.sort((x, y) => (x.module < y.module ? -1 : 1));
}

/** The model with the gated paths in its graph (scales at 1), indexed from memory, for previews and traces. */
export function withGatedPaths(model: OnnxModel, paths: GatedPaths): OnnxModel {
  if (!paths.modules.length) return model;
  return modelFromBytes(rewriteModel(model, paths.graphEdit()), model.file);
}

function modulePath(m: GatedModule, scales: Float32Array | undefined): { nodes: NodeSpec[]; initializers: TensorSpec[] } {
  const { dIn, dOut } = m.weight;
  const k = m.components.length;
  const hidden = m.components[0].component.ci!.hidden;
  const base = `${PREFIX}${m.weight.module}.`;
  const n = (x: string) => `${base}${x}`;
  const V = new Float32Array(dIn * k);
  const U = new Float32Array(k * dOut);
  const ci = { hidden, wIn: new Float32Array(k * hidden), bIn: new Float32Array(k * hidden), wOut: new Float32Array(k * hidden), bOut: new Float32Array(k) };
  const threshold = new Float32Array(k);
  const soft = new Float32Array(k);
  m.components.forEach(({ component: c, gate }, j) => {
    for (let i = 0; i < dIn; i++) V[i * k + j] = c.v[i];
    U.set(c.u, j * dOut);
    ci.wIn.set(c.ci!.wIn, j * hidden);
    ci.bIn.set(c.ci!.bIn, j * hidden);
    ci.wOut.set(c.ci!.wOut, j * hidden);
    ci.bOut[j] = c.ci!.bOut[0];
    threshold[j] = gate.kind === 'ci' ? -1 : gate.threshold;
    soft[j] = gate.kind === 'ci' ? 1 : 0;
  });
  if (scales && scales.length !== k) throw new Error(`scale vector for ${m.weight.module} has ${scales.length} values, expected ${k}`);
  const op = (opType: string, inputs: string[], output: string, attributes?: NodeSpec['attributes']): NodeSpec => ({ name: `scalpel/gate/${m.weight.module}/${output.slice(base.length)}`, opType, inputs, outputs: [output], attributes });
  const g = ciGraph(n('a'), n('ci'), ci, k);
  return {
    initializers: [
      floatTensor(n('V'), [dIn, k], V),
      floatTensor(n('U'), [k, dOut], U),
      ...g.initializers,
      floatTensor(n('threshold'), [k], threshold),
      floatTensor(n('soft'), [k], soft),
      floatTensor(n('one'), [], Float32Array.of(1)),
      floatTensor(m.scaleTensor, [k], scales ?? new Float32Array(k).fill(1)),
    ],
    nodes: [
      op('MatMul', [m.weight.inputTensor, n('V')], n('a')),
      ...g.nodes,
      // gate = [g > t] · (1 + soft·(g − 1))
      op('Greater', [n('ci'), n('threshold')], n('open')),
      op('Cast', [n('open')], n('open_f'), [{ name: 'to', i: DataType.FLOAT }]),
      op('Sub', [n('ci'), n('one')], n('ci_m1')),
      op('Mul', [n('ci_m1'), n('soft')], n('soft_m1')),
      op('Add', [n('soft_m1'), n('one')], n('strength')),
      op('Mul', [n('open_f'), n('strength')], m.gateTensor),
      // (s − 1) · gate · a, then through U, added to the module's product.
      op('Sub', [m.scaleTensor, n('one')], n('coef')),
      op('Mul', [m.gateTensor, n('a')], n('gated_a')),
      op('Mul', [n('gated_a'), n('coef')], n('z')),
      op('MatMul', [n('z'), n('U')], n('delta')),
      op('Add', [m.ungatedTensor, n('delta')], m.weight.outputTensor),
    ],
  };
}
