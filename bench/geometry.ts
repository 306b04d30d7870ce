/**
 * Geometry benchmark (`npm run bench:geometry`), on the demo model and the full UDHR in five languages:
 * capture + PCA throughput in tokens per second against the evaluation throughput of the same model on
 * the same tokens (the baseline, measured in the same run, the same ORT threads), for one capture point
 * and for every block's output at once; then the probes' cost per point.
 *
 *   npm run bench:geometry [-- --threads N] [-- --repeat N]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadDataset, parseDataArg } from '../engine/data';
import { Evaluator, evaluateAll, tokenizeDataset } from '../engine/evaluate';
import { ActivationCapture, Activations } from '../engine/geometry/capture';
import { pca } from '../engine/geometry/pca';
import { blockOutputs } from '../engine/geometry/points';
import { trainProbe } from '../engine/geometry/probe';
import { openLanguageModel } from '../engine/lm';
import { analyzeModel } from '../engine/trace/graph';
import { formatTable } from '../cli/table';

const MODEL = 'models/polyglot';
const LANGS = ['deu', 'fra', 'spa', 'ita', 'eng'];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { threads: { type: 'string' }, repeat: { type: 'string' } } });
  if (!fs.existsSync(path.join(MODEL, 'model.onnx'))) {
    process.stdout.write(`bench:geometry needs the demo model ${MODEL}/model.onnx\n`);
    return;
  }
  const threads = values.threads ? Number(values.threads) : 1;
  const repeat = values.repeat ? Number(values.repeat) : 3;
  const lm = openLanguageModel(MODEL);
  const sources = LANGS.map((c) => ({ tag: c, dataset: loadDataset(`udhr:${c}`, parseDataArg(`udhr:${c}`)) }));
  const tokenized = sources.map((s) => tokenizeDataset(s.dataset, lm.tokenizer));
  const tokens = tokenized.reduce((a, d) => a + d.ids.length - 1, 0);
  process.stdout.write(`demo model, full UDHR ${LANGS.join('/')}: ${tokens} tokens, ORT threads ${threads}, best of ${repeat}\n\n`);

  const best = async (f: () => Promise<void>) => {
    let s = Infinity;
    for (let i = 0; i < repeat; i++) {
      const t = performance.now();
      await f();
      s = Math.min(s, (performance.now() - t) / 1000);
    }
    return s;
  };
  const ev = await Evaluator.create(lm, { threads });
  const evalSeconds = await best(async () => void (await evaluateAll(ev, tokenized)));
  await ev.release();

  const structure = analyzeModel(lm.onnx, lm.logitsName);
  const layers = ['embed', ...blockOutputs(structure)];
  const rows: (string | number)[][] = [['evaluate (baseline)', 1, (tokens / evalSeconds).toFixed(0), evalSeconds.toFixed(3), '1.00×']];
  let captured: Map<string, Activations> | undefined;
  for (const points of [['h.2.resid'], layers]) {
    const capture = await ActivationCapture.create(lm, points, { threads });
    const seconds = await best(async () => {
      captured = await capture.datasets(sources);
      for (const a of captured.values()) pca(a.moments, 2);
    });
    await capture.release();
    rows.push([`capture + PCA, ${points.length === 1 ? points[0] : 'every block output + embed'}`, points.length, (tokens / seconds).toFixed(0), seconds.toFixed(3), `${(seconds / evalSeconds).toFixed(2)}×`]);
  }
  process.stdout.write(formatTable(['run', 'points', 'tokens/s', 'seconds', 'time vs evaluate'], rows) + '\n\n');

  const a = captured!.get('h.2.resid')!;
  const probeRows: (string | number)[][] = [];
  for (const kind of ['mean-difference', 'logistic'] as const) {
    const seconds = await best(async () => void (await trainProbe(a, kind, { runtime: { threads } })));
    probeRows.push([kind, a.count, seconds.toFixed(3), `${(seconds / evalSeconds).toFixed(2)}×`]);
  }
  process.stdout.write(formatTable(['probe at h.2.resid (5 tags)', 'rows', 'seconds', 'time vs evaluate'], probeRows) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
