import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Command } from '../command';
import { ScalpelError } from '../../engine/errors';
import { openCatalogTensors } from '../../engine/catalog/read';
import { openModel } from '../../engine/onnx/model';
import { GatedChange, TensorChange, diffGated, diffModels, modelSummary } from '../../engine/edit/diff';

const usage = `scalpel diff A.onnx B.onnx [--components DIR] [--json]
scalpel diff --textconv FILE.onnx

Which initializers differ between two checkpoints: shape, numerical rank of the change, its norm, and
(with a component catalog for A) which components explain it, with the scale that reproduces it; and the
gated paths of gated edits, with each component's scale and gate.

  --components DIR     the component catalog of A (default: A's folder/components when present)
  --max-components N   components to fit per tensor (default 8)
  --json               machine-readable output
  --textconv FILE      print a line per initializer (name, type, shape, content hash) for git diff:
                         .gitattributes:  *.onnx diff=onnx
                         git config diff.onnx.textconv "npx scalpel diff --textconv"
                         git config diff.onnx.cachetextconv true`;

const fmt = (v: number) => v.toPrecision(4);

function describe(c: TensorChange): string {
  const head = `${c.status.padEnd(8)} ${c.name} [${c.dims.join(', ')}]`;
  if (c.status !== 'changed' || c.frobenius === undefined) return head;
  const lines = [`${head}: ‖Δ‖_F ${fmt(c.frobenius)} (${(c.relative! * 100).toFixed(3)}% of ‖A‖), max |Δ| ${fmt(c.maxAbs!)}`];
  if (c.rank !== undefined) lines.push(`         rank ${c.rank === c.singular!.length ? `≥ ${c.rank}` : c.rank}; singular values ${c.singular!.slice(0, 4).map(fmt).join(', ')}`);
  if (c.explained) {
    if (!c.explained.components.length) lines.push('         no catalog component is aligned with this change');
    for (const x of c.explained.components) lines.push(`         ${x.key}${x.label ? ` "${x.label}"` : ''} scaled by ${fmt(x.scale)}`);
    if (c.explained.components.length) lines.push(`         unexplained: ${(c.explained.residual * 100).toFixed(2)}% of ‖Δ‖`);
  }
  return lines.join('\n');
}

function describeGated(g: GatedChange): string {
  const n = g.components.length;
  const lines = [`${g.status.padEnd(8)} gated path of ${g.module} (${n} component${n === 1 ? '' : 's'}: y += (s − 1)·gate·(x·V)·U after its product)`];
  for (const c of g.components) lines.push(`         ${c.key ?? 'a component not in the catalog'}${c.label ? ` "${c.label}"` : ''} scaled by ${fmt(c.scale)}, ${c.gate}`);
  return lines.join('\n');
}

export const diffCommand: Command = {
  name: 'diff',
  summary: 'changed tensors between two models, and the components that explain them',
  usage,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        components: { type: 'string' },
        'max-components': { type: 'string' },
        json: { type: 'boolean', default: false },
        textconv: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: true,
    });
    if (values.textconv) {
      if (positionals.length !== 1) throw new ScalpelError('diff --textconv takes one model file');
      const m = openModel(positionals[0]);
      try {
        process.stdout.write(modelSummary(m));
      } finally {
        m.close();
      }
      return 0;
    }
    if (positionals.length !== 2) throw new ScalpelError('diff takes two model files: scalpel diff A.onnx B.onnx');
    const max = values['max-components'] === undefined ? 8 : Number(values['max-components']);
    if (!Number.isInteger(max) || max <= 0) throw new ScalpelError(`--max-components takes a positive whole number, not "${values['max-components']}"`);
    const a = openModel(positionals[0]);
    const b = openModel(positionals[1]);
    const catalogDir = values.components ?? path.join(path.dirname(a.file), 'components');
    const catalog = values.components || fs.existsSync(path.join(catalogDir, 'catalog.json')) ? openCatalogTensors(catalogDir) : undefined;
    try {
      const changes = diffModels(a, b, catalog, max);
      const gated = diffGated(a, b, catalog);
      if (values.json) process.stdout.write(JSON.stringify({ a: a.file, b: b.file, changes, gated }, null, 2) + '\n');
      else {
        const text = [...changes.map(describe), ...gated.map(describeGated)];
        process.stdout.write(text.length ? text.join('\n') + '\n' : 'no initializer differs\n');
      }
      return 0;
    } finally {
      a.close();
      b.close();
      catalog?.close();
    }
  },
};
