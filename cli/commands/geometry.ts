import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Command } from '../command';
import { interruptible } from '../interrupt';
import { ProgressBar } from '../progress';
import { formatTable } from '../table';
import { openCatalogTensors } from '../../engine/catalog/read';
import { loadDataset, parseDataArg } from '../../engine/data';
import { ScalpelError, readTextFile } from '../../engine/errors';
import { GeometryResult, measureGeometry } from '../../engine/geometry';
import { TaggedSource } from '../../engine/geometry/capture';
import { blockOutputs } from '../../engine/geometry/points';
import { PROBE_KINDS, ProbeKind } from '../../engine/geometry/probe';
import { geometrySvg } from '../../engine/geometry/svg';
import { openLanguageModel } from '../../engine/lm';
import { writeFileAtomic } from '../../engine/safetensors';
import { analyzeModel } from '../../engine/trace/graph';
import { SpecSubject, probeFiguresWriter, specSubject, subjectModel, trainMissingProbes } from '../../language/geometry';
import { positiveInt } from './eval';
import { runtimeFlags, runtimeFromFlags, runtimeUsage } from '../runtime-flags';

const usage = `scalpel geometry --model DIR|FILE --data [TAG=]SOURCE … [options]
       scalpel geometry --spec SPEC.scalpel [--edit NAME] --data NAME … [options]

The shape of a model's activations: captures a point of the forward pass for every token of each
dataset (one tag per dataset), projects the points on their principal components, trains a linear
probe per tag on part of the documents and reports its balanced accuracy on the held-out rest, and
names the catalog components whose read or write vectors align with each tag's probe direction.
With --edit, the edited model is captured on the same tokens and projected on the base model's
components; the base model's probe is scored on both (and one retrained on the edited model).

  --model DIR|FILE     a folder with model.onnx + tokenizer.json, or an .onnx file
  --spec FILE          take the model, its catalog and the datasets from a spec
  --edit NAME          with --spec: also capture the model this edit makes (scale from the lock, else tuned)
  --data [TAG=]SOURCE  a dataset (udhr:deu, text:FILE, jsonl:FILE?…, inline:TEXT, or a spec's dataset
                       name); without TAG, the dataset's name (a spec's) or its documents' lang tag
  --at POINT           capture point (repeatable): h.N.resid (after block N), embed, a module path
                       (its output), or a capture id (h.1.mlp.c_fc.in, h.2.attn.out); default: the middle block
  --layers             every block's output (and embed): which layer separates the tags best
  --text FILE          also follow this text's sentences (the last token of each) as a path
  --probe KIND|NAME    logistic (default) or mean-difference; with --spec, a probe the spec declares
                       (probe NAME = logistic|linear on "POINT" over [DATA, …]): its kind, point and datasets
  --dims N             2 (default) or 3 projected dimensions
  --max-per-tag N      rows kept per tag for plots and probes (default 4000; PCA uses every token);
                       a spec dataset's "limit N tokens" bounds the tokens captured, so the rows too
  --heldout F          fraction of documents held out for probe accuracy (default 0.3)
  --catalog DIR        component catalog for alignment (default: the spec's, or components/ beside the model)
  -o, --out FILE       write every projected point (JSON)
  --svg FILE           write a plot, one panel per point (SVG)
  --min-accuracy X     exit 1 unless every tag's held-out accuracy on the base model is at least X at every point
  --max-drop X         with --edit: exit 1 when the base probe's held-out accuracy for some tag falls by more
                       than X on the edited model (e.g. 0.02: the edit keeps what the probe reads)
${runtimeUsage}
  --json               print the figures as JSON (without the points)

Exit codes: 0 done, 1 --min-accuracy or --max-drop not met, 2 bad input.`;

export const geometryCommand: Command = {
  name: 'geometry',
  summary: 'activation geometry: PCA of a capture point, probes per tag, before/after an edit',
  usage,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        tokenizer: { type: 'string' },
        spec: { type: 'string' },
        edit: { type: 'string' },
        data: { type: 'string', multiple: true },
        at: { type: 'string', multiple: true },
        layers: { type: 'boolean', default: false },
        text: { type: 'string' },
        probe: { type: 'string' },
        dims: { type: 'string' },
        'max-per-tag': { type: 'string' },
        heldout: { type: 'string' },
        catalog: { type: 'string' },
        out: { type: 'string', short: 'o' },
        svg: { type: 'string' },
        'min-accuracy': { type: 'string' },
        'max-drop': { type: 'string' },
        ...runtimeFlags,
        json: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    if (!values.spec === !values.model) throw new ScalpelError('geometry needs --model DIR|FILE or --spec FILE (one of them)');
    if (values.edit && !values.spec) throw new ScalpelError('--edit needs --spec (the edit is read from the spec)');
    const isKind = (v: string | undefined): v is ProbeKind => PROBE_KINDS.includes(v as ProbeKind);
    if (values.probe !== undefined && !isKind(values.probe) && !values.spec) throw new ScalpelError(`--probe takes ${PROBE_KINDS.join(' or ')}, not "${values.probe}" (or, with --spec, a probe the spec declares)`);
    const heldout = values.heldout === undefined ? undefined : fraction(values.heldout, '--heldout');
    const minAccuracy = values['min-accuracy'] === undefined ? undefined : fraction(values['min-accuracy'], '--min-accuracy');
    const maxDrop = values['max-drop'] === undefined ? undefined : fraction(values['max-drop'], '--max-drop');
    if (maxDrop !== undefined && !values.edit) throw new ScalpelError('--max-drop compares base and edited: give --edit');
    const runtime = runtimeFromFlags(values);
    const status = (m: string) => process.stderr.isTTY && process.stderr.write(`${m}\n`);
    if (values.spec) await trainMissingProbes(values.spec, { runtime, onStatus: status });
    const subject = values.spec ? await specSubject(values.spec, values.edit, { runtime, onStatus: status }) : undefined;
    const lm = subject ? subjectModel(subject) : openLanguageModel(values.model!, { tokenizer: values.tokenizer });
    const declared = subject && values.probe !== undefined && !isKind(values.probe) ? subject.probes.find((p) => p.name === values.probe) : undefined;
    if (subject && values.probe !== undefined && !isKind(values.probe) && !declared) {
      throw new ScalpelError(`--probe: the spec declares no probe "${values.probe}" (it has ${subject.probes.map((p) => p.name).join(', ') || 'none'}), and it is not a kind (${PROBE_KINDS.join(', ')})`, values.spec);
    }
    if (declared && (values.data?.length || values.at?.length)) throw new ScalpelError(`probe ${declared.name} names its point and datasets: drop --at and --data`);
    const probe: ProbeKind = declared?.kind ?? (isKind(values.probe) ? values.probe : 'logistic');
    const data = declared?.datasets ?? values.data ?? [];
    if (!data.length) throw new ScalpelError('geometry needs --data for at least two tags');
    const sources = data.map((arg) => taggedSource(arg, subject));
    const structure = analyzeModel(lm.onnx, lm.logitsName);
    const blocks = blockOutputs(structure);
    const points = declared && !values.layers ? [declared.point] : values.layers ? ['embed', ...blocks] : values.at?.length ? values.at : [blocks[Math.floor(blocks.length / 2)] ?? 'embed'];
    if (values.layers && values.at?.length) throw new ScalpelError('give --at or --layers, not both');
    const catalogDir = values.catalog ?? subject?.components ?? defaultCatalog(lm.file);
    const catalog = catalogDir ? openCatalogTensors(catalogDir) : undefined;
    // A declared probe trained as declared is what `alignment(PROBE.DATA)` selectors read: keep its figures.
    const figures = declared && catalog && catalogDir && heldout === undefined && values['max-per-tag'] === undefined ? probeFiguresWriter(subject!, declared, catalogDir, catalog) : undefined;
    const bar = new ProgressBar('geometry');
    let r: GeometryResult;
    try {
      r = await interruptible((signal) => measureGeometry(lm, {
        points, sources, probe, catalog, heldoutFraction: heldout, runtime,
        patches: subject?.edit?.weights, editedGraph: subject?.edit?.graph,
        text: values.text !== undefined ? readTextFile(values.text, 'read text') : undefined,
        dimensions: positiveInt(values.dims, '--dims'),
        maxPerTag: positiveInt(values['max-per-tag'], '--max-per-tag'),
        signal,
        onProgress: (p) => bar.update(p.done, p.total, p.stage),
        onProbe: figures?.onProbe,
      }));
    } finally {
      bar.done();
      catalog?.close();
    }
    if (figures) process.stderr.write(`probe ${declared!.name}: figures for alignment(${declared!.name}.…) in ${path.relative(process.cwd(), figures.file)}\n`);
    if (values.out) writeFileAtomic(values.out, [JSON.stringify(r) + '\n']);
    if (values.svg) writeFileAtomic(values.svg, [geometrySvg(r)]);
    const summary = geometrySummary(r, subject?.edit && { name: subject.edit.name, scales: subject.edit.scales });
    process.stdout.write(values.json ? JSON.stringify(summary, null, 2) + '\n' : describeGeometry(summary) + '\n');
    let code = 0;
    if (minAccuracy !== undefined) {
      const low = r.points.flatMap((p) => p.probe.perTag.filter((t) => !(t.base >= minAccuracy)).map((t) => `${t.tag} at ${p.point} (${t.base})`));
      if (low.length) {
        process.stderr.write(`scalpel: held-out probe accuracy below ${minAccuracy}: ${low.join(', ')}\n`);
        code = 1;
      }
    }
    if (maxDrop !== undefined) {
      const fell = r.points.flatMap((p) => p.probe.perTag.filter((t) => !(t.base - (t.edited ?? NaN) <= maxDrop)).map((t) => `${t.tag} at ${p.point} (${t.base} → ${t.edited})`));
      if (fell.length) {
        process.stderr.write(`scalpel: the edit moves what the probe reads by more than ${maxDrop}: ${fell.join(', ')}\n`);
        code = 1;
      }
    }
    return code;
  },
};

/** The figures of a result without its points: what `--json` prints and docs/geometry.md tabulates. */
export function geometrySummary(r: GeometryResult, edit?: { name: string; scales: Record<string, number> }) {
  const best = r.points.reduce((b, p) => (p.probe.accuracy.base > b.probe.accuracy.base ? p : b), r.points[0]);
  return {
    model: r.model,
    tags: r.tags,
    tokens: r.tokens,
    rows: r.rows.tag.length,
    heldoutRows: r.points[0]?.probe.heldoutRows ?? 0,
    ...(edit ? { edit } : {}),
    bestPoint: best?.point,
    points: r.points.map((p) => ({ point: p.point, width: p.width, explained: p.explained, probe: p.probe.kind, accuracy: p.probe.accuracy, perTag: p.probe.perTag })),
    seconds: r.seconds,
  };
}

export type GeometrySummary = ReturnType<typeof geometrySummary>;

export function describeGeometry(s: GeometrySummary): string {
  const edited = s.edit !== undefined;
  const pct = (x: number | undefined) => (x === undefined ? '' : `${(x * 100).toFixed(1)}%`);
  const header = ['point', 'width', 'PC1+PC2', 'accuracy', ...s.tags.map((t) => (edited ? `${t} base → edited` : t))];
  const rows = s.points.map((p) => [
    p.point, String(p.width), pct(p.explained[0] + (p.explained[1] ?? 0)),
    edited ? `${pct(p.accuracy.base)} → ${pct(p.accuracy.edited)}` : pct(p.accuracy.base),
    ...p.perTag.map((t) => (edited ? `${pct(t.base)} → ${pct(t.edited)}` : pct(t.base))),
  ]);
  const lines = [
    formatTable(header, rows),
    '',
    `${s.points[0]?.probe} probes, balanced accuracy on ${s.heldoutRows} held-out rows (${s.rows} rows kept of ${Object.values(s.tokens).reduce((a, b) => a + b, 0)} tokens)`,
    `best separated at ${s.bestPoint}`,
  ];
  if (s.edit) lines.push(`edited: ${s.edit.name} (${Object.entries(s.edit.scales).map(([k, v]) => `scale ${k} = ${v.toFixed(3)}`).join(', ')}); the base model's probes scored on the edited model's activations`);
  const best = s.points.find((p) => p.point === s.bestPoint);
  for (const t of best?.perTag ?? []) {
    if (t.aligned.length) lines.push(`${t.tag} direction at ${s.bestPoint} aligns with ${t.aligned.slice(0, 3).map((a) => `${a.key} (${a.side}, cos ${a.cosine.toFixed(2)}${a.label ? `, ${a.label}` : ''})`).join('; ')}`);
  }
  return lines.join('\n');
}

/** `[TAG=]SOURCE`: a spec's dataset (within its `limit N tokens`) or a data source. */
function taggedSource(arg: string, subject?: SpecSubject): TaggedSource {
  const m = /^([A-Za-z][\w-]*)=(.+)$/s.exec(arg);
  const source = m ? m[2] : arg;
  const named = subject?.datasets.has(source) ? subject.tagged(source, m?.[1]) : undefined;
  const dataset = named?.dataset ?? loadDataset(source, parseDataArg(source));
  if (!dataset.documents.length) throw new ScalpelError(`dataset ${source} has no documents`);
  if (named) return named;
  const langs = new Set(dataset.documents.map((d) => d.tags.lang));
  const tag = m ? m[1] : langs.size === 1 && [...langs][0] ? [...langs][0]! : source;
  return { tag, dataset };
}

function defaultCatalog(modelFile: string): string | undefined {
  const dir = path.join(path.dirname(modelFile), 'components');
  return fs.existsSync(path.join(dir, 'catalog.json')) ? dir : undefined;
}

function fraction(v: string, flag: string): number {
  const x = Number(v);
  if (!Number.isFinite(x) || x <= 0 || x >= 1) throw new ScalpelError(`${flag} takes a number between 0 and 1, not "${v}"`);
  return x;
}
