/**
 * Fixtures for the debugger tests: the committed tiny GPT (fixtures/tiny-gpt, see fixtures/make.py)
 * copied with a component catalog in the neuron-by-input basis (V = I, U = W: the components sum to
 * W exactly, so exact contributions must add up to the logit), and the committed demo model.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CATALOG_FORMAT, Catalog } from '../../engine/catalog/types';
import { ModuleTensors, writeCatalog } from '../../engine/catalog/write';
import { modelFromBytes, readFloatTensor } from '../../engine/onnx/model';
import { moduleWeights } from '../../engine/onnx/modules';

export const TINY = path.join(__dirname, 'fixtures', 'tiny-gpt');
export const DEMO = path.join(__dirname, '..', '..', 'models', 'polyglot');

/** Modules of the tiny GPT that get catalog components. */
export const CATALOG_MODULES = ['h.1.attn.c_attn', 'h.1.attn.c_proj', 'h.1.mlp.c_fc', 'h.1.mlp.c_proj', 'lm_head'];

/** Hidden units of the CI functions `tinyWithCatalog({ ci: true })` adds. */
export const CI_HIDDEN = 2;

/** The CI function parameters of component c of a module with C components (what `tinyWithCatalog({ ci: true })` stores). */
export function ciParams(C: number): { wIn: Float32Array; bIn: Float32Array; wOut: Float32Array; bOut: Float32Array } {
  const f = (n: number, k: number, b: number) => Float32Array.from({ length: n }, (_, i) => b + k * Math.sin(1.7 * i + 0.3));
  return { wIn: f(C * CI_HIDDEN, 2, 0), bIn: f(C * CI_HIDDEN, 0.5, 0), wOut: f(C * CI_HIDDEN, 0.4, 0), bOut: f(C, 0.2, 0.5) };
}

/**
 * A temporary copy of the tiny GPT (in a folder named tiny-gpt) with `components/` (neuron-by-input basis for
 * CATALOG_MODULES); `ci`: with causal-importance functions (`ciParams`), as an SPD catalog has, so edits can be gated.
 */
export function tinyWithCatalog(opts: { ci?: boolean } = {}): string {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-debugger-')), 'tiny-gpt');
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(TINY)) fs.copyFileSync(path.join(TINY, f), path.join(dir, f));
  const model = modelFromBytes(fs.readFileSync(path.join(dir, 'model.onnx')));
  const modules = moduleWeights(model).filter((m) => CATALOG_MODULES.includes(m.module));
  const tensors: ModuleTensors[] = modules.map((m) => {
    const V = new Float32Array(m.dIn * m.dIn);
    for (let i = 0; i < m.dIn; i++) V[i * m.dIn + i] = 1;
    const ci = ciParams(m.dIn);
    const shape = [m.dIn, CI_HIDDEN];
    const extra = opts.ci
      ? [{ name: `${m.module}.ci.w_in`, shape, data: ci.wIn }, { name: `${m.module}.ci.b_in`, shape, data: ci.bIn }, { name: `${m.module}.ci.w_out`, shape, data: ci.wOut }, { name: `${m.module}.ci.b_out`, shape: [m.dIn], data: ci.bOut }]
      : [];
    return { module: m.module, V, U: readFloatTensor(model, m.initializer), extra }; // in_out: U[c] = W[c, :]
  });
  const catalog: Catalog = {
    format: CATALOG_FORMAT,
    model: { file: 'model.onnx', sha256: '' },
    method: { name: opts.ci ? 'neuron-with-ci' : 'neuron', provenance: 'test/debugger/helpers.ts' },
    tensors: 'components.safetensors',
    modules: modules.map((m) => ({ path: m.module, initializer: m.initializer, layout: m.layout, dIn: m.dIn, dOut: m.dOut, components: m.dIn })),
    components: [
      {
        key: 'h.1.mlp.c_fc:3', module: 'h.1.mlp.c_fc', index: 3, label: { text: 'reads input unit 3', source: 'human' },
        selectivity: { de: 2.5, fr: 0.5 }, promotes: [{ token: 'der', logit: 1.25 }],
      },
    ],
  };
  writeCatalog(path.join(dir, 'components'), catalog, tensors);
  return dir;
}
