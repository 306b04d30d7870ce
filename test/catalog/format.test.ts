import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../../engine/safetensors';
import { CatalogTensors, openCatalogTensors, readCatalogMetadata } from '../../engine/catalog/read';
import { writeCatalog } from '../../engine/catalog/write';
import { CATALOG_FORMAT, Catalog } from '../../engine/catalog/types';
import { ScalpelError } from '../../engine/errors';
import { randomValues } from '../helpers/random';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-catalog-'));
}

/** A catalog of two modules with known tensors (module a: 6→4, C=3; module b: 4→5, C=2, with residual). */
function sample(): { catalog: Catalog; tensors: { module: string; V: Float32Array; U: Float32Array; residual?: Float32Array }[] } {
  const catalog: Catalog = {
    format: CATALOG_FORMAT,
    model: { file: 'model.onnx', sha256: 'ab'.repeat(32) },
    method: { name: 'test' },
    tensors: 'components.safetensors',
    modules: [
      { path: 'a', initializer: 'a.weight', layout: 'in_out', dIn: 6, dOut: 4, components: 3 },
      { path: 'b', initializer: 'b.weight', layout: 'out_in', dIn: 4, dOut: 5, components: 2 },
    ],
    components: ['a:0', 'a:1', 'a:2', 'b:0', 'b:1'].map((key) => ({ key, module: key[0], index: Number(key[2]) })),
  };
  (catalog as unknown as Record<string, unknown>).futureField = { kept: true };
  return {
    catalog,
    tensors: [
      { module: 'a', V: randomValues(18, 1), U: randomValues(12, 2) },
      { module: 'b', V: randomValues(8, 3), U: randomValues(10, 4), residual: randomValues(20, 5) },
    ],
  };
}

test('safetensors round trip: header, shapes, values, metadata, 8-byte alignment', () => {
  const file = path.join(tmp(), 't.safetensors');
  const x = randomValues(15, 9);
  const y = randomValues(4, 10);
  writeSafetensors(file, [{ name: 'x', shape: [3, 5], data: x }, { name: 'y', shape: [4], data: y }], { format: 'f' });
  const bytes = fs.readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + headerLength) % 8, 0);
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString());
  assert.deepEqual(header.x, { dtype: 'F32', shape: [3, 5], data_offsets: [0, 60] });
  assert.deepEqual(header.y, { dtype: 'F32', shape: [4], data_offsets: [60, 76] });
  const st = SafetensorsFile.open(file);
  assert.deepEqual(st.metadata, { format: 'f' });
  assert.deepEqual(st.readFloat32('y', [4]), y);
  assert.deepEqual(st.readFloat32('x'), x);
  assert.throws(() => st.readFloat32('x', [5, 3]), /has shape \[3,5\], expected \[5,3\]/);
  assert.throws(() => st.readFloat32('z'), /no tensor "z"/);
  st.close();
});

test('catalog round trip keeps unknown fields and reads each module lazily, by offset', () => {
  const dir = tmp();
  const { catalog, tensors } = sample();
  writeCatalog(dir, catalog, tensors);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['catalog.json', 'components.safetensors']); // no temporary files left
  const meta = readCatalogMetadata(dir);
  assert.deepEqual((meta as unknown as Record<string, unknown>).futureField, { kept: true });
  // One line per component, so that re-labelling diffs line by line.
  const lines = fs.readFileSync(path.join(dir, 'catalog.json'), 'utf8').split('\n');
  assert.deepEqual(lines.filter((l) => l.startsWith('  {"key":')).map((l) => JSON.parse(l.replace(/,$/, '')).key), ['a:0', 'a:1', 'a:2', 'b:0', 'b:1']);
  writeCatalog(dir, { ...catalog, components: [] });
  assert.deepEqual(readCatalogMetadata(dir).components, []);
  writeCatalog(dir, catalog);
  assert.equal(meta.modules[1].hasResidual, true);
  assert.equal(meta.modules[0].hasResidual, false);

  const ct = CatalogTensors.open(meta);
  const afterHeader = ct.file.bytesRead;
  assert.ok(afterHeader < 400, `opening read ${afterHeader} bytes: the header only`);
  const b = ct.factors('b');
  assert.equal(ct.file.bytesRead - afterHeader, (8 + 10 + 20) * 4, 'module b costs exactly its own bytes');
  assert.deepEqual(b.V, tensors[1].V);
  assert.deepEqual(b.U, tensors[1].U);
  assert.deepEqual(b.residual, tensors[1].residual);
  const a = ct.factors('a');
  assert.deepEqual(a.U, tensors[0].U);
  assert.equal(a.residual, undefined);
  ct.close();
});

test('metadata queries need no tensor bytes: a truncated tensors file still lists components', () => {
  const dir = tmp();
  const { catalog, tensors } = sample();
  writeCatalog(dir, catalog, tensors);
  const st = path.join(dir, 'components.safetensors');
  const full = fs.statSync(st).size;
  fs.truncateSync(st, full - 40); // the last module's residual is cut off
  const meta = readCatalogMetadata(dir);
  assert.equal(meta.components.length, 5);
  const ct = openCatalogTensors(dir);
  assert.deepEqual(ct.factors('a').V, tensors[0].V); // the intact module still reads
  assert.throws(() => ct.factors('b'), (e: unknown) => e instanceof ScalpelError && /ends early/.test(e.message));
  ct.close();
  fs.writeFileSync(st, Buffer.alloc(4));
  assert.equal(readCatalogMetadata(dir).components.length, 5);
  assert.throws(() => openCatalogTensors(dir), /shorter than its 8-byte header length/);
});

test('bad catalogs and tensors files give one-line errors naming the file', () => {
  const dir = tmp();
  assert.throws(() => readCatalogMetadata(dir), (e: unknown) => e instanceof ScalpelError && /cannot read component catalog: no such file/.test(e.message) && e.file!.endsWith('catalog.json'));
  fs.writeFileSync(path.join(dir, 'catalog.json'), '{"format": "other"}');
  assert.throws(() => readCatalogMetadata(dir), /not a Scalpel catalog/);
  fs.writeFileSync(path.join(dir, 'catalog.json'), '{"format": ');
  assert.throws(() => readCatalogMetadata(dir), /invalid JSON/);
  const st = path.join(dir, 'x.safetensors');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(1n << 40n);
  fs.writeFileSync(st, len);
  assert.throws(() => SafetensorsFile.open(st), /header length \d+ does not fit/);
  len.writeBigUInt64LE(5n);
  fs.writeFileSync(st, Buffer.concat([len, Buffer.from('{"a":')]));
  assert.throws(() => SafetensorsFile.open(st), /invalid safetensors header/);
  len.writeBigUInt64LE(40n);
  fs.writeFileSync(st, Buffer.concat([len, Buffer.from('{"a":{"dtype":"F32","shape":[2]}}'.padEnd(40))]));
  assert.throws(() => SafetensorsFile.open(st), /invalid safetensors header entry for "a"/);
  const { catalog, tensors } = sample();
  writeCatalog(dir, { ...catalog, tensors: '../elsewhere.safetensors' }, undefined);
  assert.throws(() => openCatalogTensors(dir), /must name a file inside the catalog folder/);
  writeCatalog(dir, catalog, tensors);
  assert.throws(() => openCatalogTensors(dir).factors('c'), /no module "c"/);
});
