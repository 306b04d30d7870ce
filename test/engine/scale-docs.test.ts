// docs/scale.md's examples, run: its `sh` blocks (SLURM scripts once per array task), the Job YAML against
// what `scalpel k8s` prints, and the GitHub Actions workflow's `run` steps per matrix value.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

const yaml = require('js-yaml') as { load(text: string): unknown };
const REPO = path.resolve(__dirname, '..', '..');
const doc = fs.readFileSync(path.join(REPO, 'docs', 'scale.md'), 'utf8');

before(() => {
  if (!fs.existsSync(path.join(REPO, 'dist', 'cli.js'))) spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit', cwd: REPO });
});

function blocks(lang: string): string[] {
  return [...doc.matchAll(/^```(\S*)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === lang).map((m) => m[2]);
}

/** A scratch folder that looks like a checkout (examples/, models/, bin/) with `scalpel` on the PATH. */
function workspace() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-scale-docs-'));
  for (const d of ['examples', 'models', 'bin', 'dist', 'node_modules']) fs.symlinkSync(path.join(REPO, d), path.join(dir, d));
  const bin = path.join(dir, '.path');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'scalpel'), `#!/bin/sh\nexec "${process.execPath}" "${path.join(REPO, 'bin', 'scalpel.js')}" "$@"\n`, { mode: 0o755 });
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, JOB_COMPLETION_INDEX: undefined };
  const sh = (script: string, extra: NodeJS.ProcessEnv = {}) => spawnSync('bash', ['-e', '-c', script], { cwd: dir, env: { ...env, ...extra }, encoding: 'utf8' });
  return { dir, sh };
}

test('the sharding and Kubernetes examples run, and the Job YAML is what scalpel k8s prints', () => {
  const { dir, sh } = workspace();
  const runnable = blocks('sh').filter((b) => !b.includes('#SBATCH'));
  assert.ok(runnable.length >= 2, 'the page has the sharding and k8s commands');
  for (const b of runnable) {
    const r = sh(b);
    assert.equal(r.status, 0, `${b}\n${r.stderr}`);
  }
  assert.ok(fs.existsSync(path.join(dir, 'merged.xml')));
  const shown = blocks('yaml').find((b) => b.includes('kind: "Job"'));
  assert.ok(shown, 'the page shows the Job YAML');
  assert.equal(fs.readFileSync(path.join(dir, 'job.yaml'), 'utf8'), shown);
});

test('the SLURM array scripts, run once per task as SLURM would, merge', () => {
  const { dir, sh } = workspace();
  const [shard, merge] = blocks('sh').filter((b) => b.includes('#SBATCH'));
  const tasks = /#SBATCH --array=0-(\d+)/.exec(shard);
  assert.ok(tasks && merge, 'an array script and a merge script');
  const count = Number(tasks[1]) + 1;
  for (let i = 0; i < count; i++) {
    const r = sh(shard, { SLURM_ARRAY_TASK_ID: String(i), SLURM_ARRAY_TASK_COUNT: String(count) });
    assert.equal(r.status, 0, r.stderr);
  }
  const r = sh(merge);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, / of \d+ checks passed/);
  assert.ok(fs.existsSync(path.join(dir, 'slurm-parts', 'junit.xml')));
});

test('the GitHub Actions matrix: each shard\'s run steps, then the merge job\'s', () => {
  const { dir, sh } = workspace();
  const workflow = yaml.load(blocks('yaml').find((b) => b.includes('strategy:'))!) as {
    jobs: Record<string, { needs?: string; strategy?: { matrix: { shard: number[] } }; steps: { run?: string; uses?: string }[] }>;
  };
  const runs = (job: string, values: Record<string, string>) =>
    workflow.jobs[job].steps
      .filter((s) => s.run && s.run !== 'npm ci && npm run build')
      .map((s) => s.run!.replace(/\$\{\{\s*matrix\.(\w+)\s*\}\}/g, (_, k: string) => values[k]));
  const shards = workflow.jobs.shard.strategy!.matrix.shard;
  assert.ok(shards.length > 1);
  for (const shard of shards) {
    for (const run of runs('shard', { shard: String(shard) })) {
      const r = sh(run);
      assert.equal(r.status, 0, `${run}\n${r.stderr}`);
    }
  }
  assert.equal(workflow.jobs.merge.needs, 'shard');
  for (const run of runs('merge', {})) {
    const r = sh(run);
    assert.equal(r.status, 0, `${run}\n${r.stderr}`);
  }
  assert.ok(fs.existsSync(path.join(dir, 'gha-parts', 'junit.xml')));
});

test('the extension runs where the workspace is: extensionKind workspace, a Node main and no browser entry', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  assert.deepEqual(pkg.extensionKind, ['workspace']);
  assert.equal(pkg.browser, undefined, 'a web extension host cannot fork the model worker or load onnxruntime-node');
  assert.match(pkg.main, /^\.\/dist\/extension\.js$/);
  assert.match(doc, /"extensionKind": \["workspace"\]/);
});
