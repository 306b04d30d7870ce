import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCatalogMetadata } from '../../engine/catalog/read';
import { PLANTED, TAG_LETTERS, tagText, writePlantedModel } from './planted';
import { scalpel } from '../helpers/cli';

test('decompose → label → components: the planted German neuron is found by query and by sort', () => {
  const dir = writePlantedModel();
  const data: string[] = [];
  for (const [i, [tag, letters]] of Object.entries(TAG_LETTERS).entries()) {
    const file = path.join(dir, `${tag}.txt`);
    fs.writeFileSync(file, tagText(letters, 100 + i));
    data.push('--data', `${tag}=text:${file}`);
  }
  const cat = path.join(dir, 'components');
  let r = scalpel(['decompose', '--model', dir, '--tokenizer', 'bytes', '--method', 'neuron', '-o', cat]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^64 components in 2 modules → /);
  r = scalpel(['label', '--model', dir, '--tokenizer', 'bytes', ...data, '--split', '0.3']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`de \\(German\\)\\s+\\d+\\s+h\\.0\\.mlp\\.c_(fc|proj):${PLANTED}\\s`));
  const meta = readCatalogMetadata(cat);
  assert.deepEqual(meta.datasets!.map((d) => [d.tag, d.split]), ['de', 'fr', 'en'].map((t) => [t, 'train part of splitDocuments(0.3, seed 0)']));

  r = scalpel(['components', '--model', dir, '--query', 'german', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const found = JSON.parse(r.stdout) as { key: string; label: { text: string }; stats: Record<string, unknown> }[];
  assert.deepEqual(found.map((c) => c.key).sort(), [`h.0.mlp.c_fc:${PLANTED}`, `h.0.mlp.c_proj:${PLANTED}`]);
  assert.ok(found.every((c) => c.label.text.startsWith('German') && c.stats.de));

  r = scalpel(['components', '--components', cat, '--sort', 'selectivity:de', '--module', 'h.0.mlp.c_fc', '--limit', '3']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.match(lines[0], /^key\s+label\s+selectivity\s+fires\s+\|a\| de\s+\|a\| fr\s+\|a\| en\s+promotes$/);
  assert.match(lines[2], new RegExp(`^h\\.0\\.mlp\\.c_fc:${PLANTED}\\s+German`));
  assert.match(r.stdout, /… 29 more/);

  r = scalpel(['label', '--model', dir, '--set', `h.0.mlp.c_fc:${PLANTED}=z detector`]);
  assert.equal(r.code, 0, r.stderr);
  r = scalpel(['components', '--model', dir, '--query', 'z detector']);
  assert.match(r.stdout, /z detector \[human\]/);
});

test('components and label: user errors are one line, exit 2', () => {
  const dir = writePlantedModel();
  for (const [args, message] of [
    [['components', '--model', dir], /cannot read component catalog: no such file/],
    [['components', '--components', dir, '--sort', 'loud'], /cannot read component catalog/],
    [['decompose', '--model', dir, '--tokenizer', 'bytes', '--method', 'pca'], /--method neuron or --method svd, not "pca"/],
    [['decompose', '--model', dir, '--tokenizer', 'bytes', '--method', 'svd', '--modules', 'attn.*'], /no weight matrix matches attn\.\*/],
    [['label', '--model', dir, '--data', 'udhr:deu'], /cannot read component catalog/],
  ] as const) {
    const r = scalpel([...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const cat = path.join(dir, 'components');
  assert.equal(scalpel(['decompose', '--model', dir, '--tokenizer', 'bytes', '--method', 'svd', '-o', cat]).code, 0);
  for (const [args, message] of [
    [['components', '--components', cat, '--sort', 'loud'], /--sort takes selectivity:TAG/],
    [['label', '--model', dir, '--tokenizer', 'bytes', '--data', 'udhr:deu'], /at least two --data/],
    [['label', '--model', dir, '--tokenizer', 'bytes', '--data', 'a=udhr:deu', '--data', 'a=udhr:eng'], /each dataset needs its own tag/],
    [['label', '--model', dir, '--tokenizer', 'bytes', '--data', 'udhr:deu', '--data', 'udhr:eng', '--split', '2'], /--split takes a fraction/],
    [['label', '--model', dir, '--set', 'h.9.mlp.c_fc:0=x'], /the catalog has no component h\.9\.mlp\.c_fc:0/],
  ] as const) {
    const r = scalpel([...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
