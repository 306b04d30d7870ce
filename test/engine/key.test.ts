import assert from 'node:assert/strict';
import { test } from 'node:test';
import { componentKey, keyModule, neuronKey, parseComponentKey, parseNeuronKey, requireComponentKey, requireNeuronKey } from '../../engine/catalog/key';
import { ScalpelError } from '../../engine/errors';

test('component keys round-trip and malformed ones parse to undefined', () => {
  assert.deepEqual(parseComponentKey(componentKey('h.1.mlp.c_fc', 41)), { module: 'h.1.mlp.c_fc', index: 41 });
  for (const bad of ['h.1.mlp.c_fc', 'h.1.mlp.c_fc:', ':3', 'h.1:4x', 'h.1:n4', 'a b:3', 'a:b:3', 'h.1:-1']) {
    assert.equal(parseComponentKey(bad), undefined, bad);
  }
});

test('neuron keys round-trip on both sides and are never component keys', () => {
  for (const side of ['in', 'out'] as const) {
    const key = neuronKey('h.0.mlp.c_proj', side, 7);
    assert.deepEqual(parseNeuronKey(key), { module: 'h.0.mlp.c_proj', side, index: 7 });
    assert.equal(parseComponentKey(key), undefined);
  }
  assert.equal(neuronKey('m', 'out', 3), 'm:n3');
  for (const bad of ['m:3', 'm:n', 'm:x3', 'm:n3a', ':n3']) assert.equal(parseNeuronKey(bad), undefined, bad);
  assert.equal(keyModule('h.2.mlp.c_fc:n5'), 'h.2.mlp.c_fc');
});

test('require* throw one ScalpelError carrying where the key was written', () => {
  assert.throws(() => requireComponentKey('oops', { file: 'a.scalpel', line: 3, column: 5 }), (e: unknown) => e instanceof ScalpelError && e.format().includes('a.scalpel:3:5') && /not a component key/.test(e.message));
  assert.throws(() => requireNeuronKey('m:3'), /not a neuron key/);
});
