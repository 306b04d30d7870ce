import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv from 'ajv';
import { writeFixture } from '../edit/fixture';
import { scalpel } from '../helpers/cli';

const yaml = require('js-yaml') as { loadAll(text: string): unknown[] };
const schema = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'k8s', 'job-batch-v1.json'), 'utf8'));
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

interface Job {
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    completionMode?: string; completions?: number; parallelism?: number; backoffLimitPerIndex?: number; maxFailedIndexes?: number;
    template: { spec: { restartPolicy: string; containers: { args: string[]; image: string; workingDir: string; resources?: { limits: Record<string, string> }; volumeMounts: { mountPath: string }[] }[]; volumes: { persistentVolumeClaim: { claimName: string } }[] } };
  };
}

function manifests(args: string[]): Job[] {
  const r = scalpel(['k8s', ...args]);
  assert.equal(r.code, 0, r.stderr);
  const docs = yaml.loadAll(r.stdout) as Job[];
  assert.equal(docs.length, 2);
  for (const d of docs) assert.ok(validate(d), `not a valid batch/v1 Job: ${JSON.stringify(validate.errors)}`);
  return docs;
}

test('the schema is strict: a misspelt field or a wrong type is refused (so a valid manifest means something)', () => {
  const [job] = manifests(['examples/remove-german.scalpel', '--shards', '3', '--image', 'scalpel:test']);
  assert.ok(validate(job));
  assert.equal(validate({ ...job, spec: { ...job.spec, completionMod: 'Indexed' } }), false);
  assert.equal(validate({ ...job, spec: { ...job.spec, completions: '3' } }), false);
  assert.equal(validate({ ...job, kind: 'Deployment' }), false);
  const noName = structuredClone(job) as unknown as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
  delete noName.spec.template.spec.containers[0].name;
  assert.equal(validate(noName), false);
});

test('scalpel k8s: an Indexed Job of N shards retried per index, a merge Job, one volume; GPUs only with a GPU provider', () => {
  const [shards, merge] = manifests(['examples/remove-german.scalpel', '--shards', '4', '--image', 'ghcr.io/example/scalpel:0.1.0', '--parallelism', '2', '--retries', '3', '--claim', 'models', '--ep', 'cuda,cpu', '--threads', '2']);
  assert.equal(shards.metadata.name, 'scalpel-remove-german');
  assert.equal(shards.metadata.labels['scalpel.dev/step'], 'shards');
  assert.equal(merge.metadata.labels['scalpel.dev/step'], 'merge');
  assert.deepEqual([shards.spec.completionMode, shards.spec.completions, shards.spec.parallelism, shards.spec.backoffLimitPerIndex, shards.spec.maxFailedIndexes], ['Indexed', 4, 2, 3, 0]);
  const pod = shards.spec.template.spec;
  // backoffLimitPerIndex needs restartPolicy Never (Kubernetes refuses it otherwise).
  assert.equal(pod.restartPolicy, 'Never');
  const c = pod.containers[0];
  assert.deepEqual(c.args, ['eval', 'examples/remove-german.scalpel', '--shard', '4', '--out', 'out/scalpel-remove-german/', '--ep', 'cuda,cpu', '--threads', '2']);
  assert.deepEqual(c.resources?.limits, { 'nvidia.com/gpu': '1' });
  assert.equal(c.workingDir, '/scalpel');
  assert.equal(c.volumeMounts[0].mountPath, '/scalpel');
  assert.equal(pod.volumes[0].persistentVolumeClaim.claimName, 'models');
  const m = merge.spec.template.spec.containers[0];
  assert.deepEqual(m.args, ['merge', 'out/scalpel-remove-german/', '--junit', 'out/scalpel-remove-german/junit.xml', '--out', 'out/scalpel-remove-german/merged.json']);
  assert.equal(m.resources, undefined);

  const [cpu] = manifests(['examples/remove-german.scalpel', '--shards', '2', '--image', 'x']);
  assert.equal(cpu.spec.template.spec.containers[0].resources, undefined);
  assert.deepEqual(cpu.spec.template.spec.containers[0].args.slice(-2), ['--out', 'out/scalpel-remove-german/']);

  for (const [args, why] of [
    [['examples/remove-german.scalpel', '--image', 'x'], /needs --shards N/],
    [['examples/remove-german.scalpel', '--shards', '2'], /needs --image IMAGE/],
    [[path.resolve('examples/remove-german.scalpel'), '--shards', '2', '--image', 'x'], /relative to the volume's root/],
    [['examples/remove-german.scalpel', '--shards', '2', '--image', 'x', '--ep', 'dml'], /unknown execution provider "dml"/],
  ] as const) {
    const r = scalpel(['k8s', ...args]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, why);
  }
});

test('the pods\' commands, run as the Job runs them (JOB_COMPLETION_INDEX, the volume as working directory), merge to the unsharded result', () => {
  const fx = writeFixture();
  fs.mkdirSync(path.join(fx.dir, 'specs'));
  fs.writeFileSync(path.join(fx.dir, 'specs', 'job.scalpel'), `model tiny from ".." { components "../components" }
data a = inline "Alle Menschen sind frei und gleich an Wuerde und Rechten geboren . Sie sind mit Vernunft und Gewissen begabt ."
data b = inline "The quick brown fox jumps over the lazy dog . The dog ."
guard g = [b] within 100 nats
edit e on tiny {
  select "h.0.mlp.c_proj:3"
  scale 0.5
  keep g
}
`);
  const [shards, merge] = manifests(['specs/job.scalpel', '--shards', '3', '--image', 'x']);
  const run = (job: Job, env: NodeJS.ProcessEnv = {}) => scalpel(job.spec.template.spec.containers[0].args, { cwd: fx.dir, env });
  for (let i = 0; i < shards.spec.completions!; i++) assert.equal(run(shards, { JOB_COMPLETION_INDEX: String(i) }).code, 0);
  const merged = run(merge);
  const whole = scalpel(['eval', 'specs/job.scalpel', '--out', 'whole.json'], { cwd: fx.dir });
  assert.equal(whole.code, 0, whole.stderr);
  assert.equal(merged.code, scalpel(['eval', 'specs/job.scalpel'], { cwd: fx.dir }).code, merged.stderr);
  const out = path.join(fx.dir, 'out', 'scalpel-job');
  assert.ok(fs.readFileSync(path.join(out, 'merged.json')).equals(fs.readFileSync(path.join(fx.dir, 'whole.json'))));
  assert.match(fs.readFileSync(path.join(out, 'junit.xml'), 'utf8'), /<testcase classname="e" name="guard g on b: \|Δloss\| &lt;= 100\.0000 nats" file="specs\/job\.scalpel" line="4">/);
});
