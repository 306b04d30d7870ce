/**
 * SPD-format import round trip: test/fixtures/spd-import/run/ is a tiny goodfire-ai/spd-style run
 * (state dict + autointerp results.jsonl); lab/import_spd.py converted it into catalog/. This reads
 * that catalog with the TypeScript reader and checks it against the values make.py put in the run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCatalogTensors, readCatalogMetadata, reconstructWeight } from '../../engine/catalog/read';
import { openModel, readFloatTensor } from '../../engine/onnx/model';
import { moduleWeights } from '../../engine/onnx/modules';

const FIXTURE = path.join(__dirname, '../fixtures/spd-import');

/** make.py's `grid`: values (k mod 17)/8 − 1, row-major. */
function grid(rows: number, cols: number, start: number): Float32Array {
  return Float32Array.from({ length: rows * cols }, (_, i) => ((start + i) % 17) / 8 - 1);
}

test('an imported SPD run reads back: keys, shapes, V/U values, labels, layouts and model hash', () => {
  const dir = path.join(FIXTURE, 'catalog');
  const meta = readCatalogMetadata(dir);
  assert.equal(meta.method.name, 'imported-spd');
  assert.deepEqual(meta.components.map((c) => c.key), ['h.0.mlp.c_fc:0', 'h.0.mlp.c_fc:1', 'h.0.mlp.c_fc:2', 'h.0.mlp.c_proj:0', 'h.0.mlp.c_proj:1']);
  const labels = Object.fromEntries(meta.components.filter((c) => c.label).map((c) => [c.key, c.label]));
  assert.deepEqual(labels, {
    'h.0.mlp.c_fc:1': { text: 'German umlauts', source: 'imported', confidence: 0.9 },
    'h.0.mlp.c_fc:2': { text: 'sentence ends', source: 'imported', confidence: 0.3 },
    'h.0.mlp.c_proj:0': { text: 'non-English text', source: 'imported', confidence: 0.75 },
  });
  const modelFile = path.join(FIXTURE, 'model.onnx');
  assert.equal(meta.model.sha256, createHash('sha256').update(fs.readFileSync(modelFile)).digest('hex'));

  const model = openModel(modelFile);
  const weights = new Map(moduleWeights(model).map((w) => [w.module, w]));
  const ct = openCatalogTensors(dir);
  const expected: Record<string, [Float32Array, Float32Array]> = {
    'h.0.mlp.c_fc': [grid(4, 3, 0), grid(3, 8, 5)],
    'h.0.mlp.c_proj': [grid(8, 2, 11), grid(2, 4, 3)],
  };
  for (const m of meta.modules) {
    const w = weights.get(m.path)!;
    assert.deepEqual([m.initializer, m.layout, m.dIn, m.dOut], [w.initializer, w.layout, w.dIn, w.dOut]);
    const f = ct.factors(m.path);
    assert.deepEqual(f.V, expected[m.path][0]);
    assert.deepEqual(f.U, expected[m.path][1]);
    // The fixture's weights are exactly (V @ U).T, stored in each layout: the components sum to them.
    assert.deepEqual(reconstructWeight(f), readFloatTensor(model, m.initializer));
  }
  ct.close();
  model.close();
});

const python = '/usr/bin/python3';
const hasTorch = fs.existsSync(python) && spawnSync(python, ['-c', 'import torch, onnx'], { stdio: 'ignore' }).status === 0;

test('lab/import_spd.py reproduces the committed catalog from the run', { skip: hasTorch ? false : 'needs /usr/bin/python3 with torch and onnx' }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-import-'));
  const root = path.join(__dirname, '../..');
  const r = spawnSync(python, [path.join(root, 'lab/import_spd.py'), path.join(FIXTURE, 'run/model.pth'), '--model', path.join(FIXTURE, 'model.onnx'),
    '--labels', path.join(FIXTURE, 'run/results.jsonl'), '--out', out, '--run-id', 'fixture'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(fs.readFileSync(path.join(out, 'components.safetensors')), fs.readFileSync(path.join(FIXTURE, 'catalog/components.safetensors')));
  const strip = (c: Record<string, unknown>) => ({ ...c, created: undefined });
  assert.deepEqual(strip(readCatalogMetadata(out) as never), strip({ ...readCatalogMetadata(path.join(FIXTURE, 'catalog')), dir: out } as never));
});
