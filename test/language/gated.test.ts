/**
 * `gated` / `gated where ci > T` and `METRIC toward uniform | N nats` in specs: what the checker
 * gives the engine, the diagnostics for wrong values, completion, and formatting.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { analyze, defaultEnv } from '../../language/checker';
import { format } from '../../language/format';
import { loadPlan } from '../../language/plan';
import { checkedAnalysis, specFromAnalysis } from '../../language/semantic';
import { completions } from '../../language/services';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'lang');
const FILE = path.join(FIXTURE, 'gated.scalpel');

const loadSpecText = (text: string, file: string) => specFromAnalysis(checkedAnalysis(file, text), file);

function spec(scale: string): string {
  return `model demo from "model.onnx" {
  components "components"
}

data german = udhr "deu"
data french = udhr "fra"
data tune_de = inline "Die Würde des Menschen" limit 4 tokens
guard others = [french] within 0.05 nats

edit e on demo {
  select "h.2.mlp.c_fc:41"
  ${scale}
  keep others
}
`;
}

// S104 (unused data) is beside the point here.
const diagnostics = (text: string) => analyze(text, defaultEnv(FIXTURE)).diagnostics.filter((d) => d.code !== 'S104').map((d) => `${d.code} ${d.message}`);

test('gated scales and toward objectives reach the semantic model', () => {
  const cases: [string, unknown][] = [
    ['scale -3 gated', { kind: 'literal', value: -3, gate: { kind: 'ci' } }],
    ['scale 0 gated where ci > 0.25', { kind: 'literal', value: 0, gate: { kind: 'threshold', threshold: 0.25 } }],
    ['scale tune in [-64, 1] loss(tune_de) toward uniform gated', { kind: 'tune', range: [-64, 1], objective: 'toward', toward: { kind: 'uniform' }, metric: { kind: 'loss', target: { kind: 'dataset', name: 'tune_de' } }, data: ['tune_de'], gate: { kind: 'ci' } }],
    ['scale tune in [-8, 1] loss(tune_de) toward 2 bits', { kind: 'tune', range: [-8, 1], objective: 'toward', toward: { kind: 'loss', nats: 2 * Math.LN2 }, metric: { kind: 'loss', target: { kind: 'dataset', name: 'tune_de' } }, data: ['tune_de'] }],
    ['scale tune in [-8, 1] maximize loss(tune_de)', { kind: 'tune', range: [-8, 1], objective: 'maximize', metric: { kind: 'loss', target: { kind: 'dataset', name: 'tune_de' } }, data: ['tune_de'] }],
  ];
  for (const [scale, want] of cases) {
    const text = spec(scale);
    assert.deepEqual(diagnostics(text), [], scale);
    assert.deepEqual(loadSpecText(text, FILE).edits[0].scale, want, scale);
    assert.equal(format(text), text, `${scale} is already formatted`);
  }
  // The plan carries the gate and the target.
  const plan = loadPlan(FILE, spec('scale tune in [-64, 1] loss(tune_de) toward uniform gated where ci > 0.5'));
  assert.deepEqual(plan.edits[0].gate, { kind: 'threshold', threshold: 0.5 });
  assert.deepEqual({ ...plan.edits[0].scale, tune: { ...(plan.edits[0].scale as { tune: object }).tune, origin: undefined } }, {
    tune: { low: -64, high: 1, objective: 'toward', toward: 'uniform', datasets: ['tune_de'], origin: undefined },
  });
});

test('wrong gates and targets are located errors, and parsing goes on', () => {
  assert.deepEqual(diagnostics(spec('scale 0 gated where ci > 1.5')), ['S406 a CI threshold is between 0 and 1 (causal importance is in [0, 1]); 1.5 never opens the gate']);
  assert.deepEqual(diagnostics(spec('scale 0 gated where ci > -0.5')), ['S406 a CI threshold is between 0 and 1 (causal importance is in [0, 1]); -0.5 always opens it: drop "gated"']);
  assert.deepEqual(diagnostics(spec('scale tune in [-8, 1] loss(tune_de) toward 3 %')), ['S505 "toward" names a loss: use nats or bits, not %']);
  assert.deepEqual(diagnostics(spec('scale tune in [-8, 1] loss(tune_de) toward 0 nats')), ['S501 a target loss must be positive']);
  assert.deepEqual(diagnostics(spec('scale tune in [-8, 1] loss(tune_de)')), ['S002 expected "toward" and the loss to reach (uniform, or e.g. 7 nats), found "keep"']);
  assert.deepEqual(diagnostics(spec('scale 0 gated where activation > 0.1')), ['S002 expected "ci" (the component\'s causal importance), found "activation"']);
  assert.deepEqual(diagnostics(spec('scale tune in [-8, 1] toward uniform')), ['S002 expected maximize, minimize, or a metric and "toward", found "toward"']);
});

test('completion offers the loss form after the range, toward and gated after the metric, uniform after toward', () => {
  const labels = (text: string, at: string) => {
    const a = analyze(text, defaultEnv(FIXTURE));
    return completions(a, text.indexOf(at) + at.length).items.map((i) => i.label);
  };
  const text = spec('scale tune in [-8, 1] loss(tune_de) toward uniform gated');
  assert.deepEqual(labels(text, '[-8, 1] '), ['maximize', 'minimize', 'loss']);
  assert.deepEqual(labels(text, 'loss(tune_de) '), ['toward', 'gated']);
  assert.deepEqual(labels(text, 'toward '), ['uniform']);
  assert.deepEqual(labels(text, 'uniform '), ['gated']);
  assert.deepEqual(labels(spec('scale tune in [-8, 1] maximize loss(tune_de) gated'), 'loss(tune_de) '), ['gated']);
  assert.deepEqual(labels(spec('scale -2 gated where ci > 0.5'), 'gated '), ['where ci > 0.5']);
  assert.deepEqual(labels(spec('scale -2 gated where ci > 0.5'), 'where '), ['ci']);
});
