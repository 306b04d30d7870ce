/**
 * The ablation statistic end to end in the language: `top K by ablation(DATA[, OTHERS])` ranks by the
 * catalog's recorded Δloss, completion offers it after `by`, hover explains it and the component card
 * shows the figures.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { CATALOG_FORMAT, Catalog } from '../../engine/catalog/types';
import { CatalogCache } from '../../language/catalog';
import { analyze, cachingProbe } from '../../language/checker';
import { componentCard, completions, hover } from '../../language/services';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'lang');
const TAGS = ['de', 'fr', 'en'];

/** Three components of one module: 0 hurts German most, 1 hurts everything a lot, 2 hurts nothing. */
function writeCatalog(dir: string): void {
  const ablations = [{ de: 0.4, fr: 0.01, en: 0.02 }, { de: 0.5, fr: 0.6, en: 0.7 }, { de: 0, fr: 0, en: 0 }];
  const catalog: Catalog = {
    format: CATALOG_FORMAT,
    model: { file: 'model.onnx', sha256: '' },
    method: { name: 'spd' },
    tensors: 'components.safetensors',
    modules: [{ path: 'h.0.mlp.c_fc', initializer: 'h.0.mlp.c_fc.weight', layout: 'in_out', dIn: 4, dOut: 8, components: 3 }],
    components: ablations.map((ablation, index) => ({
      key: `h.0.mlp.c_fc:${index}`, module: 'h.0.mlp.c_fc', index, ablation,
      stats: Object.fromEntries(TAGS.map((t) => [t, { meanAbs: 1, firingRate: 0.5 }])),
    })),
    ablationTokens: 512,
  };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'catalog.json'), JSON.stringify(catalog));
}

function spec(selector: string): string {
  return `model m from "${path.join(FIXTURE, 'model.onnx')}" {
  tokenizer "${path.join(FIXTURE, 'tokenizer.json')}"
  components "components"
}
data german = udhr "deu"
data french = udhr "fra"
data english = udhr "eng"
guard others = [french, english] within 1 nats
edit e on m {
  select ${selector}
  scale 0
  keep others
}
`;
}

test('top K by ablation ranks by the recorded Δloss; with OTHERS, by how much more it hurts DATA', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-ablation-'));
  writeCatalog(path.join(dir, 'components'));
  const env = { baseDir: dir, files: cachingProbe(), catalogs: new CatalogCache() };
  const picked = (selector: string) => {
    const a = analyze(spec(selector), env);
    assert.deepEqual(a.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message), [], selector);
    return [...a.selections.values()][0];
  };
  assert.deepEqual(picked('top 1 by ablation(german)'), ['h.0.mlp.c_fc:1']);
  assert.deepEqual(picked('top 1 by ablation(german, others)'), ['h.0.mlp.c_fc:0']);
  assert.deepEqual(picked('top 2 by ablation(english, german)'), ['h.0.mlp.c_fc:1', 'h.0.mlp.c_fc:2']);

  const text = spec('top 1 by ablation(german, others)');
  const a = analyze(text, env);
  const after = text.indexOf('by ') + 3;
  const items = completions(a, after).items;
  const item = items.find((i) => i.label === 'ablation');
  assert.ok(item, `completion after "by" offers ablation (got ${items.map((i) => i.label).join(', ')})`);
  assert.match(String(item.detail), /^ablation\(DATA\[, OTHERS…\]\): Δloss on DATA when the component is removed/);
  const h = hover(a, text.indexOf('ablation(') + 2);
  assert.match(JSON.stringify(h?.contents), /ablation\(DATA\[, OTHERS…\]\)/);
  const index = [...a.models.values()][0].catalog!;
  assert.match(componentCard(index, 'h.0.mlp.c_fc:0'), /\| de \| 1\.000 \| 50% \|  \| \+0\.4000 \|/);
});
