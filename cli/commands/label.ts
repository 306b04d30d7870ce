import { parseArgs } from 'node:util';
import { Command } from '../command';
import { interruptible } from '../interrupt';
import { ProgressBar } from '../progress';
import { formatTable } from '../table';
import { ScalpelError } from '../../engine/errors';
import { openLanguageModel } from '../../engine/lm';
import { componentsByKey } from '../../engine/catalog/key';
import { CatalogTensors, defaultCatalogDir, readCatalogMetadata } from '../../engine/catalog/read';
import { writeCatalog } from '../../engine/catalog/write';
import { modelSha256 } from '../../engine/identity';
import { labelCatalog, taggedDataset } from '../../engine/label';
import { mostSelective, tagName } from '../../engine/label/stats';
import { ComponentInfo } from '../../engine/catalog/types';
import { positiveInt } from './eval';
import { runtimeFlags, runtimeFromFlags, runtimeUsage } from '../runtime-flags';
import { contextFlag, contextUsage, sayAssumedContext } from '../context';

const usage = `scalpel label --model DIR|FILE [--components DIR] --data [TAG=]SOURCE --data … [options]
scalpel label --model DIR|FILE [--components DIR] --set KEY=TEXT [--set …]

Runs the model on tagged datasets and records, per component: mean |activation| and firing rate
per tag, selectivity, top-activating contexts, the tokens its write vector promotes, the Δloss per
tag of ablating it, and an automatic label such as "German (9.4× vs fr/es/it/en)" (given only where
ablating the component hurts German). Human and imported labels are kept.

  --model DIR|FILE       a folder with model.onnx + tokenizer.json, or an .onnx file
  --components DIR       the catalog (default: components/ beside the model)
  --data [TAG=]SOURCE    a dataset and its tag (udhr:deu is tagged de by itself); at least two
  --split F              use the part of each dataset's documents that splitDocuments(F) does not
                         hold out (so evaluation can use the held-out part); 0 < F < 1
  --max-tokens N         at most N tokens per dataset
  --measure ci|activation  statistics of the catalog's causal importance (default where it has CI
                         functions, as SPD catalogs do) or of |x·V[:, c]|·‖U[c]‖
  --firing-threshold X   above which a component fires (default 0.5 for CI, 0.1 for activations)
  --ablation-tokens N    tokens per tag on which each component's ablation Δloss is measured
                         (default 512; 0 skips the ablation pass)
  --set KEY=TEXT         set a human label (no model run); --set KEY= removes it
  --batch N              windows per run
${contextUsage(25)}
${runtimeUsage}
  --tokenizer FILE       tokenizer.json to use (or "bytes")`;

export const labelCommand: Command = {
  name: 'label',
  summary: 'label catalog components by per-tag activation statistics',
  usage,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        components: { type: 'string' },
        data: { type: 'string', multiple: true },
        split: { type: 'string' },
        'max-tokens': { type: 'string' },
        'firing-threshold': { type: 'string' },
        measure: { type: 'string' },
        set: { type: 'string', multiple: true },
        batch: { type: 'string' },
        'ablation-tokens': { type: 'string' },
        ...contextFlag,
        ...runtimeFlags,
        tokenizer: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    });
    if (!values.model) throw new ScalpelError('label needs --model DIR|FILE');
    const dir = values.components ?? defaultCatalogDir(values.model);
    const catalog = readCatalogMetadata(dir);
    if (values.set?.length) {
      if (values.data?.length) throw new ScalpelError('--set changes labels only; run it without --data');
      const byKey = componentsByKey(catalog);
      for (const s of values.set) {
        const eq = s.indexOf('=');
        if (eq <= 0) throw new ScalpelError(`--set takes KEY=TEXT, not "${s}"`);
        const c = byKey.get(s.slice(0, eq));
        if (!c) throw new ScalpelError(`the catalog has no component ${s.slice(0, eq)}`, dir);
        const text = s.slice(eq + 1).trim();
        if (text) c.label = { text, source: 'human', confidence: 1 };
        else c.label = c.autoLabel;
      }
      writeCatalog(catalog.dir, catalog);
      process.stdout.write(`${values.set.length} label(s) set in ${dir}\n`);
      return 0;
    }
    if (!values.data || values.data.length < 2) throw new ScalpelError('label needs at least two --data [TAG=]SOURCE (e.g. --data udhr:deu --data udhr:eng)');
    const split = values.split === undefined ? undefined : Number(values.split);
    if (split !== undefined && !(split > 0 && split < 1)) throw new ScalpelError(`--split takes a fraction between 0 and 1, not "${values.split}"`);
    const threshold = values['firing-threshold'] === undefined ? undefined : Number(values['firing-threshold']);
    if (threshold !== undefined && !(threshold >= 0)) throw new ScalpelError(`--firing-threshold takes a number ≥ 0, not "${values['firing-threshold']}"`);
    const measure = values.measure;
    if (measure !== undefined && measure !== 'ci' && measure !== 'activation') throw new ScalpelError(`--measure takes ci or activation, not "${measure}"`);
    const lm = openLanguageModel(values.model, { tokenizer: values.tokenizer, contextLength: positiveInt(values.context, '--context') });
    sayAssumedContext(lm);
    if (catalog.model?.sha256 && catalog.model.sha256 !== modelSha256(lm.file)) {
      process.stderr.write(`scalpel: warning: the catalog was made from a different model file (sha256 ${catalog.model.sha256.slice(0, 12)}…)\n`);
    }
    const maxTokens = positiveInt(values['max-tokens'], '--max-tokens') ?? Infinity;
    const data = values.data.map((arg) => taggedDataset(arg, lm, { split, maxTokens }));
    const tensors = CatalogTensors.open(catalog);
    const bar = new ProgressBar('label');
    try {
      const result = await interruptible((signal) => labelCatalog(lm, tensors, data, {
        firingThreshold: threshold,
        measure,
        batchSize: positiveInt(values.batch, '--batch'),
        ablationTokens: values['ablation-tokens'] === '0' ? 0 : positiveInt(values['ablation-tokens'], '--ablation-tokens'),
        ...runtimeFromFlags(values),
        signal,
        onProgress: (p) => bar.update(p.done, p.total, p.tag),
      }));
      bar.done();
      writeCatalog(catalog.dir, result.catalog);
      const seconds = result.activationSeconds + result.outputSeconds + result.ablationSeconds;
      const rows = data.map((d, i) => {
        const [best, next] = mostSelective(result.catalog.components, d.tag);
        const sel = (c?: ComponentInfo) => (c ? `${c.selectivity![d.tag].toFixed(1)}×` : '-');
        const fires = best ? `${(best.stats![d.tag].firingRate * 100).toFixed(0)}%` : '-';
        return [`${d.tag} (${tagName(d.tag)})`, result.catalog.datasets![i].tokens, best?.key ?? '-', sel(best), fires, sel(next)];
      });
      process.stdout.write(
        formatTable(['tag', 'tokens', 'most selective (firing ≥ 1%)', 'selectivity', 'fires', 'next best'], rows) +
          `\n\n${result.catalog.components.length} components labelled in ${dir}: ${result.tokens} tokens, ` +
          `${(result.componentTokens / result.activationSeconds / 1e6).toFixed(1)}M component·tokens/s (${seconds.toFixed(2)} s` +
          (result.ablationRuns ? `; ablation of every component on ${result.catalog.ablationTokens} tokens per tag: ${result.ablationSeconds.toFixed(2)} s in ${result.ablationRuns} runs` : '') +
          ')\n',
      );
      return 0;
    } finally {
      tensors.close();
    }
  },
};
