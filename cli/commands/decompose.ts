import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Command } from '../command';
import { ScalpelError } from '../../engine/errors';
import { openLanguageModel } from '../../engine/lm';
import { DecomposeMethod, decompose } from '../../engine/decompose';
import { writeCatalog } from '../../engine/catalog/write';
import { positiveInt } from './eval';
import { runtimeFlags, runtimeFromFlags, runtimeUsage } from '../runtime-flags';
import { interruptible } from '../interrupt';
import { ProgressBar } from '../progress';

const usage = `scalpel decompose --model DIR|FILE --method neuron|svd [options]

Decomposes a model's weight matrices into rank-one components and writes a catalog
(catalog.json + components.safetensors; see docs/components.md).

  --model DIR|FILE     a folder with model.onnx + tokenizer.json, or an .onnx file
  --method neuron|svd  neuron: each MLP hidden unit is a component of the up- and the down-projection (exact);
                       svd: each matrix's singular triplets, largest first, the rest kept as residual
  --rank K             svd: triplets kept per matrix (default: all); with a rank, a randomized truncated SVD
  --modules GLOB       module paths to decompose, fnmatch style, repeatable (default: the MLP matrices)
  --tokenizer FILE     tokenizer.json to use (or "bytes"); default: beside the model
  -o, --out DIR        output folder (default: MODEL_DIR/catalogs/METHOD)
${runtimeUsage} (the SVD's products with --rank)`;

export const decomposeCommand: Command = {
  name: 'decompose',
  summary: 'built-in decomposition (neuron or SVD basis) into a component catalog',
  usage,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        method: { type: 'string' },
        rank: { type: 'string' },
        modules: { type: 'string', multiple: true },
        tokenizer: { type: 'string' },
        out: { type: 'string', short: 'o' },
        ...runtimeFlags,
      },
      strict: true,
      allowPositionals: false,
    });
    if (!values.model) throw new ScalpelError('decompose needs --model DIR|FILE');
    const method = values.method;
    if (method !== 'neuron' && method !== 'svd') throw new ScalpelError(`decompose needs --method neuron or --method svd${method ? `, not "${method}"` : ''}`);
    if (values.rank !== undefined && method !== 'svd') throw new ScalpelError('--rank applies to --method svd only');
    const lm = openLanguageModel(values.model, { tokenizer: values.tokenizer });
    const started = performance.now();
    const bar = new ProgressBar('decompose');
    const d = await interruptible((signal) =>
      decompose(lm, {
        method: method as DecomposeMethod, modules: values.modules, rank: positiveInt(values.rank, '--rank'), ...runtimeFromFlags(values),
        signal, onProgress: (p) => bar.update(p.done, p.total, p.module),
      }),
    ).finally(() => bar.done());
    const out = values.out ?? path.join(path.dirname(lm.file), 'catalogs', method);
    writeCatalog(out, d.catalog, d.tensors);
    const seconds = (performance.now() - started) / 1000;
    const residual = d.catalog.modules.some((m) => m.hasResidual) ? ' (with residuals)' : '';
    process.stdout.write(`${d.catalog.components.length} components in ${d.catalog.modules.length} modules${residual} → ${out} (${seconds.toFixed(2)} s)\n`);
    return 0;
  },
};
