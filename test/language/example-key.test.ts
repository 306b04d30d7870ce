/**
 * Messages about malformed keys show a key from the user's own catalog (an exporter's module names), or the
 * generic `<module>:<index>` form when no catalog is at hand, never the demo model's.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { requireComponentKey } from '../../engine/catalog/key';
import { scalpel } from '../helpers/cli';

const FIXTURE = path.resolve('test/fixtures/real/llama');
const DOWN = 'model.layers.1.mlp.down_proj';

test('S302 on an exporter catalog shows that catalog\'s key shape; without a catalog the generic form', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-example-key-'));
  for (const f of ['model.onnx', 'config.json', 'tokenizer.json']) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
  const decomposed = scalpel(['decompose', '--model', dir, '--method', 'neuron', '--modules', DOWN, '-o', path.join(dir, 'components')]);
  assert.equal(decomposed.code, 0, decomposed.stderr);
  const spec = path.join(dir, 'keys.scalpel');
  fs.writeFileSync(spec, [
    'model m from "." {', '  components "components"', '}', 'model bare from "." {', '}',
    'edit e on m {', '  select "down_proj"', '  scale 0', '}',
    'edit f on bare {', '  select "down_proj"', '  scale 0', '}', '',
  ].join('\n'));
  const checked = scalpel(['check', spec]);
  const said = checked.stdout + checked.stderr;
  assert.match(said, new RegExp(`:7:\\d+: .*"down_proj" is not a component key \\(keys look like "${DOWN.replace(/\./g, '\\.')}:0"\\)`), said);
  assert.match(said, /:11:\d+: .*"down_proj" is not a component key \(keys look like "<module>:<index>"\)/, said);
  assert.doesNotMatch(said, /c_fc/);
});

test('requireComponentKey names the first component of the modules it is given', () => {
  const modules = [{ path: 'model.layers.0.self_attn.v_proj', components: 0 }, { path: 'model.layers.0.mlp.up_proj', components: 8 }];
  assert.throws(() => requireComponentKey('oops', undefined, modules), /e\.g\. model\.layers\.0\.mlp\.up_proj:0\)/);
  assert.throws(() => requireComponentKey('oops'), /e\.g\. <module>:<index>\)/);
});
