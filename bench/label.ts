/**
 * Labelling benchmark (`npm run bench:label`), on the demo model and the UDHR (train part of
 * splitDocuments(0.5), five languages):
 * - throughput of `labelCatalog` in component·tokens per second, and its time against a plain
 *   forward pass over the same tokens (the baseline, measured in the same run);
 * - how language-specific each method's best component is: per language the best and next-best
 *   selectivity, for the neuron basis, the SVD basis and the committed SPD catalog (when present);
 * - the same throughput for a synthetic 40,000-component catalog (random V, U over the MLP matrices).
 *
 *   npm run bench:label [-- --max-tokens N] [-- --write]   (--write keeps the neuron/SVD catalogs
 *   under models/polyglot/catalogs/; otherwise they go to a temporary folder)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { openLanguageModel, LanguageModel } from '../engine/lm';
import { Evaluator, evaluateAll } from '../engine/evaluate';
import { decompose } from '../engine/decompose';
import { writeCatalog } from '../engine/catalog/write';
import { componentKey } from '../engine/catalog/key';
import { CatalogTensors, readCatalogMetadata } from '../engine/catalog/read';
import { CATALOG_FORMAT, Catalog, ComponentInfo } from '../engine/catalog/types';
import { LabelResult, TaggedData, labelCatalog, taggedDataset } from '../engine/label';
import { mostSelective } from '../engine/label/stats';
import { formatTable } from '../cli/table';
import { randomValues } from '../test/helpers/random';

const MODEL = 'models/polyglot';
const LANGS = ['deu', 'fra', 'spa', 'ita', 'eng'];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'max-tokens': { type: 'string' }, write: { type: 'boolean', default: false }, threads: { type: 'string' } } });
  if (!fs.existsSync(path.join(MODEL, 'model.onnx'))) {
    process.stdout.write(`bench:label needs the demo model ${MODEL}/model.onnx\n`);
    return;
  }
  const lm = openLanguageModel(MODEL);
  const maxTokens = values['max-tokens'] ? Number(values['max-tokens']) : undefined;
  const threads = values.threads ? Number(values.threads) : 1;
  const data = LANGS.map((l) => taggedDataset(`udhr:${l}`, lm, { split: 0.5, maxTokens }));
  const tokens = data.reduce((a, d) => a + d.data.ids.length - 1, 0);
  process.stdout.write(`demo model, UDHR train part of splitDocuments(0.5): ${tokens} tokens over ${data.map((d) => d.tag).join('/')}, ORT threads ${threads}\n\n`);

  const base = await forwardSeconds(lm, data, threads);
  const rows: (string | number)[][] = [];
  const specificity: (string | number)[][] = [];
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-bench-label-'));
  const catalogs: [string, string][] = [];
  for (const method of ['neuron', 'svd'] as const) {
    const d = await decompose(lm, { method });
    const dir = values.write ? path.join(MODEL, 'catalogs', method) : path.join(scratch, method);
    writeCatalog(dir, d.catalog, d.tensors);
    catalogs.push([method, dir]);
  }
  const spd = path.join(MODEL, 'components');
  if (fs.existsSync(path.join(spd, 'catalog.json'))) {
    // Label a copy: the benchmark never rewrites the committed catalog.
    const copy = path.join(scratch, 'spd');
    fs.cpSync(spd, copy, { recursive: true });
    catalogs.push(['spd', copy], ['spd activation', copy]);
  }
  for (const [method, dir] of catalogs) {
    const r = await run(lm, dir, data, threads, method === 'spd activation' ? 'activation' : undefined);
    if (values.write && method !== 'spd' && method !== 'spd activation') writeCatalog(dir, r.catalog);
    rows.push(throughputRow(`${method} (${r.catalog.statsMeasure})`, r, base));
    for (const d of data) {
      const best = mostSelective(r.catalog.components, d.tag);
      specificity.push([`${method} (${r.catalog.statsMeasure})`, d.tag, best[0]?.key ?? '-', best[0] ? sel(best[0], d.tag).toFixed(1) : '-', best[0] ? pct(best[0], d.tag) : '-',
        best[1]?.key ?? '-', best[1] ? sel(best[1], d.tag).toFixed(1) : '-', best[0]?.label?.text ?? '']);
    }
  }

  const synthetic = await syntheticCatalog(lm, path.join(scratch, 'synthetic'), 40_000);
  const few = LANGS.map((l) => taggedDataset(`udhr:${l}`, lm, { split: 0.5, maxTokens: 300 }));
  const fewBase = await forwardSeconds(lm, few, threads);
  rows.push(throughputRow(`synthetic ${synthetic}`, await run(lm, path.join(scratch, 'synthetic'), few, threads), fewBase));

  process.stdout.write(formatTable(['catalog', 'components', 'tokens', 'label s', 'forward s', '× forward', 'Mcomp·tok/s', 'output-side s'], rows) + '\n\n');
  process.stdout.write('Most language-specific component per method, among those firing on ≥ 1% of the language\'s tokens\n(selectivity = mean |activation| or mean CI on the language / its mean over the other languages)\n');
  process.stdout.write(formatTable(['method', 'lang', 'best', 'sel', 'fires', 'next best', 'sel', 'label'], specificity) + '\n');
  fs.rmSync(scratch, { recursive: true, force: true });
}

async function run(lm: LanguageModel, dir: string, data: TaggedData[], threads: number, measure?: 'activation'): Promise<LabelResult> {
  const tensors = CatalogTensors.open(readCatalogMetadata(dir));
  try {
    return await labelCatalog(lm, tensors, data, { threads, measure });
  } finally {
    tensors.close();
  }
}

/** The baseline: the same tokens through the plain model (loss head only), same batching and threads. */
async function forwardSeconds(lm: LanguageModel, data: TaggedData[], threads: number): Promise<number> {
  const ev = await Evaluator.create(lm, { threads });
  const started = performance.now();
  await evaluateAll(ev, data.map((d) => d.data));
  const s = (performance.now() - started) / 1000;
  await ev.release();
  return s;
}

function throughputRow(name: string, r: LabelResult, forward: number): (string | number)[] {
  const C = r.catalog.components.length;
  return [name, C, r.tokens, r.activationSeconds.toFixed(2), forward.toFixed(2), (r.activationSeconds / forward).toFixed(1), (r.componentTokens / r.activationSeconds / 1e6).toFixed(1), r.outputSeconds.toFixed(2)];
}

function sel(c: ComponentInfo, tag: string): number {
  return c.selectivity?.[tag] ?? 0;
}

function pct(c: ComponentInfo, tag: string): string {
  return `${((c.stats?.[tag]?.firingRate ?? 0) * 100).toFixed(0)}%`;
}

/** Random rank-one components spread over the model's MLP matrices, `total` in all. */
async function syntheticCatalog(lm: LanguageModel, dir: string, total: number): Promise<string> {
  const base = (await decompose(lm, { method: 'svd', rank: 1 })).catalog;
  const per = Math.floor(total / base.modules.length);
  const modules = base.modules.map((m, i) => ({ ...m, components: per + (i < total % base.modules.length ? 1 : 0), hasResidual: false }));
  const components: ComponentInfo[] = modules.flatMap((m) => Array.from({ length: m.components }, (_, c) => ({ key: componentKey(m.path, c), module: m.path, index: c })));
  const catalog: Catalog = { format: CATALOG_FORMAT, model: base.model, method: { name: 'synthetic-random' }, tensors: 'components.safetensors', modules, components };
  writeCatalog(dir, catalog, modules.map((m, i) => ({
    module: m.path,
    V: randomValues(m.dIn * m.components, 11 + i).map((v) => v / Math.sqrt(m.dIn)),
    U: randomValues(m.components * m.dOut, 101 + i).map((v) => v / Math.sqrt(m.dOut)),
  })));
  return `${components.length} random`;
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exitCode = 1;
});
