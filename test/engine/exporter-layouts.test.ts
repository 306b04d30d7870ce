/**
 * Models as users' exporters write them (test/fixtures/real, made by lab/export_real_fixtures.py): HF GPT-2
 * (Conv1D as Gemm on flattened tokens, tied lm_head), Llama/Qwen (q/k/v/o, gate/up/down, RMSNorm, rotary, GQA),
 * constant folding on and off, opset 14 and 17, float32, float16 and bfloat16, external data, a decoder with past inputs.
 * Each goes through the whole workflow, through the CLI's own commands in this process: eval, decompose, label,
 * check, eval SPEC, apply (an identity edit byte-identical, a real one measured), diff, review, and the debugger
 * (stack, scopes, and the contributions of an attention value projection and an MLP's two layers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { commands } from '../../cli/commands';
import type { ReviewResult, WorkerMessage } from '../../extension/protocol';
import { launchRuntime } from '../../debugger/launch';
import { readCatalogMetadata } from '../../engine/catalog/read';
import { Evaluator, tokenizeDataset } from '../../engine/evaluate';
import { openLanguageModel } from '../../engine/lm';
import { openModel, readFloatTensor, readTensorBytes } from '../../engine/onnx/model';
import { moduleWeights } from '../../engine/onnx/modules';
import { TraceAnalysis } from '../../engine/trace/analysis';
import { Tracer } from '../../engine/trace/trace';

const FIXTURES = path.resolve('test/fixtures/real');
const LAYOUTS = fs.readdirSync(FIXTURES).filter((d) => fs.existsSync(path.join(FIXTURES, d, 'model.onnx'))).sort();
const TEXT_DE = 'Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und Gewissen begabt.';
const TEXT_EN = 'All human beings are born free and equal in dignity and rights. They are endowed with reason and conscience.';

/** Runs a CLI command in this process; returns its exit code and what it printed. */
async function cli(...argv: string[]): Promise<{ code: number; out: string }> {
  const command = commands.find((c) => c.name === argv[0])!;
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await command.run(argv.slice(1)), out };
  } finally {
    process.stdout.write = write;
  }
}

/** Every initializer's bytes and every node equal: an identity edit (side files are renamed after the output, so the .onnx differs in their location). */
function assertSameTensors(a: string, b: string): void {
  const [ma, mb] = [openModel(a), openModel(b)];
  try {
    assert.deepEqual(mb.nodes, ma.nodes);
    assert.deepEqual([...mb.initializers.keys()], [...ma.initializers.keys()]);
    for (const [name, t] of ma.initializers) assert.ok(Buffer.from(readTensorBytes(mb, mb.initializers.get(name)!)).equals(readTensorBytes(ma, t)), `${name} is byte-identical`);
    if (![...ma.initializers.values()].some((t) => t.storage.kind === 'external')) assert.ok(fs.readFileSync(b).equals(fs.readFileSync(a)), 'the whole file is byte-identical');
  } finally {
    ma.close();
    mb.close();
  }
}

/** The extension's review job, in its model worker (from source), as extension/jobs.ts runs it. */
function reviewJob(spec: string): Promise<ReviewResult> {
  return new Promise((resolve, reject) => {
    const child = fork(path.resolve('extension/worker.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'result') resolve(m.result as ReviewResult);
      else if (m.type === 'error') reject(new Error(m.message));
    });
    child.on('error', reject);
    child.send({ kind: 'review', spec });
  });
}

test('the fixtures cover every layout the issue names', () => {
  assert.deepEqual(LAYOUTS, ['gpt2', 'gpt2-external', 'gpt2-fp16-weights', 'gpt2-unfolded-opset14', 'llama', 'llama-bf16-weights', 'llama-fp16', 'llama-unfolded-opset14', 'llama-with-past']);
  assert.ok(fs.existsSync(path.join(FIXTURES, 'gpt2-external', 'model.onnx_data')));
});

for (const layout of LAYOUTS) {
  const fixture = path.join(FIXTURES, layout);
  const half = layout.includes('fp16');
  const gpt2 = layout.startsWith('gpt2');
  const prefix = gpt2 ? 'transformer.h' : 'model.layers';
  const up = gpt2 ? `${prefix}.1.mlp.c_fc` : `${prefix}.1.mlp.up_proj`;
  const down = gpt2 ? `${prefix}.1.mlp.c_proj` : `${prefix}.1.mlp.down_proj`;
  const value = gpt2 ? `${prefix}.0.attn.c_attn` : `${prefix}.0.self_attn.v_proj`;

  test(`${layout}: the whole workflow`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `scalpel-${layout}-`));
    for (const f of fs.readdirSync(fixture)) fs.copyFileSync(path.join(fixture, f), path.join(dir, f));
    const model = path.join(dir, 'model.onnx');

    // The engine's loss is PyTorch's: per-token NLL from the exported logits of a fixed input.
    const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as { input_ids: number[]; logits: number[][] };
    const lm = openLanguageModel(dir);
    const ev = await Evaluator.create(lm, { batchSize: 2 });
    const ids = Int32Array.from(expected.input_ids);
    const r = await ev.evaluate({ name: 'x', source: 'x', ids, documentStarts: [0] });
    await ev.release();
    const tol = half ? 2e-2 : 1e-4;
    for (let t = 0; t + 1 < ids.length; t++) {
      const row = expected.logits[t];
      const max = Math.max(...row);
      const nll = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0)) - row[ids[t + 1]];
      assert.ok(Math.abs(r.perToken[t] - nll) < tol * Math.max(1, nll), `token ${t}: ${r.perToken[t]} vs PyTorch ${nll}`);
    }

    const evalOut = await cli('eval', '--model', dir, '--data', `inline:${TEXT_DE}`, '--json');
    assert.equal(evalOut.code, 0, JSON.stringify(evalOut.out.slice(0, 300)));
    assert.ok(Number.isFinite(JSON.parse(evalOut.out)[0]?.loss ?? JSON.parse(evalOut.out).datasets?.[0]?.loss), evalOut.out);

    // Neuron catalog of one MLP and one attention value projection, labelled on two tagged texts: every token of both is counted.
    const catalog = path.join(dir, 'components');
    assert.equal((await cli('decompose', '--model', dir, '--method', 'neuron', '--modules', value, '--modules', up, '--modules', down, '-o', catalog)).code, 0);
    const de = path.join(dir, 'de.txt');
    const en = path.join(dir, 'en.txt');
    fs.writeFileSync(de, `${TEXT_DE}\n\n${TEXT_DE.toUpperCase()}\n`);
    fs.writeFileSync(en, `${TEXT_EN}\n\n${TEXT_EN.toUpperCase()}\n`);
    assert.equal((await cli('label', '--model', dir, '--components', catalog, '--data', `de=text:${de}`, '--data', `en=text:${en}`, '--batch', '2')).code, 0);
    const meta = readCatalogMetadata(catalog);
    assert.deepEqual(meta.modules.map((m) => m.path), [value, up, down]);
    // Output-side statistics go through the final norm (LayerNorm at any opset, or RMSNorm) and the unembedding;
    // GPT-2's values through c_proj (grouped value heads have no fixed direction: which query heads read them varies).
    for (const m of gpt2 ? [value, up, down] : [up, down]) assert.equal(meta.components.find((c) => c.module === m)?.promotes?.length, 5, `${m} promotes`);
    if (!gpt2) assert.equal(meta.components.find((c) => c.module === value)?.promotes, undefined);
    const tokens = (file: string) => tokenizeDataset({ name: 'x', source: 'x', documents: fs.readFileSync(file, 'utf8').split('\n\n').map((text) => ({ text: text.trim(), tags: {} })) }, lm.tokenizer).ids.length;
    // Every position that predicts a next token (all but the stream's last), across windows and batches.
    assert.deepEqual(meta.datasets?.map((d) => d.tokens), [tokens(de) - 1, tokens(en) - 1], 'every token of every dataset is counted');

    // A spec in the user's module names: checked, evaluated, applied.
    const spec = path.join(dir, 'edit.scalpel');
    const key = `${down}:3`;
    fs.writeFileSync(spec, [
      `model m from "." {`,
      `  components "components"`,
      `}`,
      `data german = text "de.txt"`,
      `data english = text "en.txt"`,
      `guard others = [english] within 5 nats`,
      `edit identity on m {`,
      `  select "${key}"`,
      `  scale 1`,
      `  keep others`,
      `}`,
      `edit ablate on m {`,
      `  select "${key}"`,
      `  scale 0`,
      `  keep others`,
      `}`,
      `edit dampen on m {`,
      `  select "${key}"`,
      `  scale 0.3`,
      `}`,
      '',
    ].join('\n'));
    const checked = await cli('check', spec);
    assert.equal(checked.code, 0, checked.out);
    const evaluated = await cli('eval', spec, '--json');
    assert.ok(evaluated.code === 0 || evaluated.code === 1, evaluated.out);
    assert.match(evaluated.out, /ablate/);
    const same = path.join(dir, 'same.onnx');
    assert.equal((await cli('apply', spec, '--edit', 'identity', '-o', same, '--lock', path.join(dir, 'identity.lock'))).code, 0);
    assertSameTensors(model, same);
    const edited = path.join(dir, 'edited.onnx');
    assert.equal((await cli('apply', spec, '--edit', 'ablate', '-o', edited)).code, 0);
    // The Review panel finds the edited weight by module, whatever the exporter named or stored it (`onnx::MatMul_N`,
    // behind Cast, in external data); `scalpel review` writes the pull-request page from the same lock.
    const review = await reviewJob(spec);
    const base = openModel(model);
    const weight = moduleWeights(base).find((w) => w.module === down)!.initializer;
    base.close();
    assert.deepEqual(review.weights.map((w) => w.initializer), [weight]);
    if (layout === 'llama') assert.match(weight, /^onnx::MatMul_/);
    assert.ok(review.weights[0].changed > 0);
    const page = path.join(dir, 'review.html');
    assert.equal((await cli('review', spec, '-o', page)).code, 0);
    assert.ok(fs.readFileSync(page, 'utf8').includes(key), 'the page lists the edited component');
    if (layout.includes('bf16')) {
      // W' = W + (0.3 − 1)·v⊗u in float32, rounded once to bfloat16: hidden unit 3's row of the (in, out) matrix is 0.3·W.
      const dampened = path.join(dir, 'dampened.onnx');
      assert.equal((await cli('apply', spec, '--edit', 'dampen', '-o', dampened, '--no-measure')).code, 0);
      const [mb, me] = [openModel(model), openModel(dampened)];
      const mw = moduleWeights(mb).find((w) => w.module === down)!;
      assert.equal(mb.initializers.get(mw.initializer)!.dtype, 'bfloat16');
      assert.equal(mw.layout, 'in_out');
      const [w, w2] = [readFloatTensor(mb, mw.initializer), readFloatTensor(me, mw.initializer)];
      for (let i = 0; i < mw.dIn; i++) {
        for (let j = 0; j < mw.dOut; j++) {
          const k = i * mw.dOut + j;
          if (i !== 3) assert.equal(w2[k], w[k]);
          else {
            const want = 0.3 * w[k];
            const halfUlp = 2 ** (Math.floor(Math.log2(Math.abs(want))) - 8);
            assert.ok(Math.abs(w2[k] - want) <= halfUlp * 1.001, `[${i}, ${j}]: ${w2[k]} is not ${want} rounded to bfloat16`);
          }
        }
      }
      mb.close();
      me.close();
    }
    const diff = await cli('diff', model, edited);
    assert.equal(diff.code, 0);
    assert.match(diff.out, /rank 1|numerical rank 1|‖ΔW‖/, diff.out);

    // The debugger: the edited model's logits move, the listing names the user's modules, and the logit lens works.
    const tracer = await Tracer.create(lm, { editedFile: edited });
    const trace = await tracer.trace(ids);
    const analysis = new TraceAnalysis(tracer, trace, undefined);
    const last = ids.length - 1;
    assert.ok(analysis.difference(trace.structure.logits, last).absolute > 0, 'the ablation changes the logits');
    const logits = analysis.logits('base', last);
    assert.equal(logits.length, 256);
    // The logit lens at the last residual equals the model's own logits (the final norm and unembedding, in JavaScript).
    const lens = analysis.lens(trace.structure.finalNorm!.input, 'base', last);
    lens.forEach((v, i) => assert.ok(Math.abs(v - logits[i]) < (half ? 5e-2 : 1e-3) * Math.max(1, Math.abs(logits[i])), `lens logit ${i}: ${v} vs ${logits[i]}`));
    await tracer.release();
    const launched = await launchRuntime({ model: dir, catalog, input: TEXT_EN.slice(0, 40), scales: { [`${down}:n3`]: 0 } });
    const rt = launched.runtime;
    assert.ok(rt.listing.includes(`  ${down}  (`), rt.listing);
    await rt.start(true, false);
    await rt.stepIn();
    const scopes = rt.scopes(rt.frames()[0]);
    assert.ok(scopes.length > 0 && scopes.every((s) => s.variables().length > 0));
    // Stepping through every stop: each catalog module's components show a contribution along their path.
    const how = new Map<string, string>();
    for (let r = await rt.stepIn(); r.reason !== 'terminated'; r = await rt.stepIn()) {
      const p = rt.point;
      if (p.kind !== 'component' || how.has(p.module!)) continue;
      assert.deepEqual(rt.frames().map((f) => f.point.key), [p.key, p.module, p.block, 'model']);
      const vars = rt.scopes(rt.frames()[0]).find((s) => s.name === 'Activations')!.variables();
      how.set(p.module!, vars.find((v) => v.name.startsWith('contribution to '))!.value);
    }
    assert.match(how.get(value)!, /value path/);
    assert.match(how.get(up)!, gpt2 ? /secant/ : /exact given the gate/);
    assert.match(how.get(down)!, /direct path/);
    await launched.release();
    fs.rmSync(dir, { recursive: true });
  });
}
