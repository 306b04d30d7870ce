import { parseArgs } from 'node:util';
import { Command } from '../command';
import { interruptible } from '../interrupt';
import { ProgressBar } from '../progress';
import { formatTable } from '../table';
import { ScalpelError } from '../../engine/errors';
import { loadDataset, parseDataArg } from '../../engine/data';
import { openLanguageModel } from '../../engine/lm';
import { Evaluator, evaluateAll, tokenizeDataset } from '../../engine/evaluate';
import { evalSpec, specEvalUsage } from '../edit-spec';
import { datasetLossJson } from '../../engine/report';
import { runtimeFlags, runtimeFromFlags, runtimeUsage } from '../runtime-flags';
import { contextFlag, contextUsage, sayAssumedContext } from '../context';

const usage = `scalpel eval --model DIR|FILE --data SOURCE [--data SOURCE …] [options]
       scalpel eval SPEC.scalpel [--edit NAME] [--json] [--junit FILE]   (see below)

Held-out next-token loss of a model on each dataset, in nats per token.

  --model DIR|FILE     a folder with model.onnx + tokenizer.json, or an .onnx file
  --tokenizer FILE     tokenizer.json to use (or "bytes"); default: beside the model
  --data SOURCE        udhr:CODE (deu, fra, spa, ita, eng), text:FILE, jsonl:FILE[?text=FIELD&TAG=VALUE],
                       inline:TEXT, or a path; repeat for several datasets
  --max-tokens N       score at most N tokens per dataset
  --batch N            windows per run (default 8)
${contextUsage(23)}
${runtimeUsage}
  --json               machine-readable output
  --per-token          with --json: every scored token's text and loss

${specEvalUsage}`;

export const evalCommand: Command = {
  name: 'eval',
  summary: 'loss per dataset of a model (nats/token)',
  usage,
  async run(argv) {
    if (argv.some((a) => a.endsWith('.scalpel'))) return evalSpec(argv);
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        tokenizer: { type: 'string' },
        data: { type: 'string', multiple: true },
        'max-tokens': { type: 'string' },
        batch: { type: 'string' },
        ...contextFlag,
        ...runtimeFlags,
        json: { type: 'boolean', default: false },
        'per-token': { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    if (!values.model) throw new ScalpelError('eval needs --model DIR|FILE');
    if (!values.data?.length) throw new ScalpelError('eval needs at least one --data SOURCE');
    const lm = openLanguageModel(values.model, { tokenizer: values.tokenizer, contextLength: positiveInt(values.context, '--context') });
    sayAssumedContext(lm);
    const maxTokens = positiveInt(values['max-tokens'], '--max-tokens') ?? Infinity;
    const datasets = values.data.map((arg) => tokenizeDataset(loadDataset(arg, parseDataArg(arg)), lm.tokenizer, maxTokens));
    const ev = await Evaluator.create(lm, { ...runtimeFromFlags(values), batchSize: positiveInt(values.batch, '--batch') });
    const bar = new ProgressBar('eval');
    const started = performance.now();
    try {
      const results = await interruptible((signal) => evaluateAll(ev, datasets, { signal, onProgress: (p) => bar.update(p.done, p.total, p.dataset) }));
      bar.done();
      const seconds = (performance.now() - started) / 1000;
      const scored = results.reduce((a, r) => a + r.tokens, 0);
      if (values.json) {
        const out = {
          model: lm.file,
          tokenizer: lm.tokenizer.source,
          vocabSize: ev.vocabSize,
          contextLength: lm.contextLength,
          uniformLoss: Math.log(ev.vocabSize),
          datasets: results.map((r, i) => datasetLossJson(r, values['per-token'] ? { data: datasets[i], tokenizer: lm.tokenizer } : undefined)),
          seconds,
        };
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      } else {
        const uniform = Math.log(ev.vocabSize);
        process.stdout.write(
          formatTable(
            ['dataset', 'tokens', 'loss (nats)', 'bits/token', 'vs uniform'],
            results.map((r) => [r.name, r.tokens, r.loss.toFixed(4), (r.loss / Math.LN2).toFixed(3), `${((r.loss / uniform) * 100).toFixed(1)}%`]),
          ) + `\n\nuniform loss ln ${ev.vocabSize} = ${uniform.toFixed(4)} nats; ${scored} tokens in ${seconds.toFixed(2)} s (${Math.round(scored / seconds)} tokens/s)\n`,
        );
      }
      return 0;
    } finally {
      await ev.release();
    }
  },
};

export function positiveInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new ScalpelError(`${flag} takes a positive whole number, not "${v}"`);
  return n;
}
