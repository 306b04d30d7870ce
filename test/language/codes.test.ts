/**
 * The diagnostic codes: docs/language.md documents exactly the codes of language/diagnostics.ts with
 * their severities, and the two catalog-dependent codes no golden reaches (a catalog made for another
 * model file, a gated edit on a catalog without causal-importance functions) come out where they should.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { analyze, defaultEnv } from '../../language/checker';
import { CODES, Code } from '../../language/diagnostics';

const ROOT = path.join(__dirname, '..', '..');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'lang');

test("docs/language.md's Diagnostics section lists every code with its severity", () => {
  const text = fs.readFileSync(path.join(ROOT, 'docs', 'language.md'), 'utf8');
  const section = text.slice(text.indexOf('\n## Diagnostics'));
  const documented = [...section.matchAll(/^- \*\*(S\d{3})\*\* \[(error|warning|info)\]/gm)].map((m) => `${m[1]} ${m[2]}`);
  const sorted = (xs: string[]) => [...xs].sort();
  assert.deepEqual(sorted(documented), sorted((Object.keys(CODES) as Code[]).map((c) => `${c} ${CODES[c][0]}`)));
});

/** A folder with the language fixture's model and its catalog.json changed by `change`. */
function fixtureWithCatalog(change: (catalog: Record<string, any>) => void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-codes-'));
  fs.copyFileSync(path.join(FIXTURE, 'model.onnx'), path.join(dir, 'model.onnx'));
  fs.copyFileSync(path.join(FIXTURE, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  const catalog = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'components', 'catalog.json'), 'utf8'));
  change(catalog);
  fs.mkdirSync(path.join(dir, 'components'));
  fs.writeFileSync(path.join(dir, 'components', 'catalog.json'), JSON.stringify(catalog));
  return dir;
}

const SPEC = (scale: string) => `model demo from "model.onnx" {
  components "components"
}
data german = udhr "deu"
data french = udhr "fra"
guard others = [french] within 0.05 nats
edit e on demo {
  select top 1 by selectivity(german)
  ${scale}
  keep others
}
`;

function found(dir: string, text: string, code: Code): string[] {
  try {
    return analyze(text, defaultEnv(dir)).diagnostics.filter((d) => d.code === code).map((d) => text.slice(d.start, d.end));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('S207: a catalog recorded for another model file is flagged on its components line, and only then', () => {
  assert.deepEqual(found(fixtureWithCatalog((c) => { c.model.sha256 = 'ab'.repeat(32); }), SPEC('scale 0'), 'S207'), ['"components"']);
  const own = fs.readFileSync(path.join(FIXTURE, 'model.onnx'));
  const sha = createHash('sha256').update(own).digest('hex');
  assert.deepEqual(found(fixtureWithCatalog((c) => { c.model.sha256 = sha; }), SPEC('scale 0'), 'S207'), []);
});

test('S407: gating needs causal-importance functions: neuron and SVD catalogs are refused at `gated`, SPD is not', () => {
  for (const method of ['neuron', 'svd']) {
    assert.deepEqual(found(fixtureWithCatalog((c) => { c.method.name = method; }), SPEC('scale 0 gated'), 'S407'), ['gated'], method);
    assert.deepEqual(found(fixtureWithCatalog((c) => { c.method.name = method; }), SPEC('scale 0'), 'S407'), [], `${method} without gated`);
  }
  assert.deepEqual(found(fixtureWithCatalog(() => {}), SPEC('scale 0 gated'), 'S407'), []);
});
