import { parseArgs } from 'node:util';
import { Command } from '../command';
import { formatTable } from '../table';
import { ScalpelError } from '../../engine/errors';
import { defaultCatalogDir, readCatalogMetadata } from '../../engine/catalog/read';
import { ComponentInfo } from '../../engine/catalog/types';
import { moduleGlob } from '../../engine/onnx/modules';
import { positiveInt } from './eval';

const usage = `scalpel components --model DIR|FILE [--components DIR] [options]

Lists a catalog's components with their labels and statistics (reads catalog.json only).

  --model DIR|FILE   the model whose catalog to list (components/ beside it)
  --components DIR   the catalog folder, instead
  --query TEXT       keep components whose key or label contains every word of TEXT (any case)
  --module GLOB      keep components of matching modules (fnmatch, e.g. "h.1.mlp.*")
  --sort KEY         selectivity:TAG | meanAbs:TAG | firing:TAG | norm (descending) | key (catalog order);
                     default: catalog order, or with --query, labels that start with the query first, then by confidence
  --limit N          show at most N (default 40 in the table, all with --json)
  --json             a JSON list of components (key, label, stats, selectivity, contexts, promotes, …)`;

export const componentsCommand: Command = {
  name: 'components',
  summary: 'list, search and sort a component catalog',
  usage,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        components: { type: 'string' },
        query: { type: 'string' },
        module: { type: 'string' },
        sort: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    if (!values.model && !values.components) throw new ScalpelError('components needs --model DIR|FILE or --components DIR');
    const catalog = readCatalogMetadata(values.components ?? defaultCatalogDir(values.model!));
    let list = catalog.components;
    if (values.module) {
      const re = moduleGlob(values.module);
      list = list.filter((c) => re.test(c.module));
    }
    if (values.query) {
      const words = values.query.toLowerCase().split(/\s+/).filter(Boolean);
      list = list.filter((c) => {
        const hay = [c.key, c.label?.text, c.autoLabel?.text].filter(Boolean).join(' ').toLowerCase();
        return words.every((w) => hay.includes(w));
      });
    }
    if (values.sort && values.sort !== 'key') list = [...list].sort(sorter(values.sort));
    else if (values.query) list = [...list].sort(byRelevance(values.query.toLowerCase()));
    const limit = positiveInt(values.limit, '--limit') ?? (values.json ? Infinity : 40);
    const shown = list.slice(0, limit);
    if (values.json) {
      process.stdout.write(JSON.stringify(shown, null, 1) + '\n');
      return 0;
    }
    const tags = catalog.datasets?.map((d) => d.tag ?? d.name) ?? [];
    const sortTag = /^\w+:(.+)$/.exec(values.sort ?? '')?.[1];
    const rows = shown.map((c) => {
      const sel = c.selectivity ?? {};
      const best = sortTag ?? Object.keys(sel).sort((a, b) => sel[b] - sel[a])[0];
      return [
        c.key,
        c.label ? `${c.label.text}${c.label.source !== 'auto' ? ` [${c.label.source}]` : ''}` : '',
        best && sel[best] !== undefined ? `${best} ${sel[best].toFixed(1)}×` : '',
        best && c.stats?.[best] ? `${(c.stats[best].firingRate * 100).toFixed(0)}%` : '',
        ...tags.map((t) => (c.stats?.[t] ? c.stats[t].meanAbs.toPrecision(3) : '')),
        (c.promotes ?? []).slice(0, 3).map((p) => JSON.stringify(p.token)).join(' '),
      ];
    });
    const more = list.length > shown.length ? `\n… ${list.length - shown.length} more (--limit N, --json)` : '';
    const measure = catalog.statsMeasure === 'ci' ? 'CI' : '|a|';
    const header = ['key', 'label', 'selectivity', 'fires', ...tags.map((t) => `${measure} ${t}`), 'promotes'];
    process.stdout.write(`${formatTable(header, rows)}${more}\n${list.length} of ${catalog.components.length} components (${catalog.method.name}, ${catalog.dir})\n`);
    return 0;
  },
};

function sorter(spec: string): (a: ComponentInfo, b: ComponentInfo) => number {
  const m = /^(selectivity|meanAbs|firing):(.+)$/.exec(spec);
  const value: ((c: ComponentInfo) => number | undefined) | undefined =
    spec === 'norm' ? (c) => c.norm :
    m?.[1] === 'selectivity' ? (c) => c.selectivity?.[m[2]] :
    m?.[1] === 'meanAbs' ? (c) => c.stats?.[m[2]]?.meanAbs :
    m?.[1] === 'firing' ? (c) => c.stats?.[m[2]]?.firingRate :
    undefined;
  if (!value) throw new ScalpelError(`--sort takes selectivity:TAG, meanAbs:TAG, firing:TAG, norm or key, not "${spec}"`);
  return (a, b) => {
    const x = value(a) ?? -Infinity;
    const y = value(b) ?? -Infinity;
    return x === y ? 0 : y > x ? 1 : -1;
  };
}

/** `--query german` lists "German (…)" before "non-German (…)" and "English+German (…)"; then surer labels first. */
function byRelevance(query: string): (a: ComponentInfo, b: ComponentInfo) => number {
  const score = (c: ComponentInfo) => (c.label?.text.toLowerCase().startsWith(query) ? 2 : 0) + (c.label?.confidence ?? 0);
  return (a, b) => score(b) - score(a);
}
