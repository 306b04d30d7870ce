/**
 * Where activations are read: capture points of the forward pass (engine/trace/graph.ts), named the
 * way a user thinks of them, and the deterministic sentence split of a text.
 */
import { ScalpelError } from '../errors';
import { Capture, ModelStructure } from '../trace/graph';

/**
 * A capture point by name: any capture id of `analyzeModel` (`h.2.mlp.resid`, `h.2.attn.out`,
 * `h.2.mlp.c_fc.in`), `h.N.resid` for the residual stream after block N, `embed` for the stream
 * entering the first block, or a module path (`h.2.mlp.c_fc`) for that module's output.
 */
export function resolvePoint(structure: ModelStructure, name: string): Capture {
  const exact = structure.captures.find((c) => c.id === name);
  if (exact) return exact;
  const block = /^(.+)\.resid$/.exec(name);
  if (block) {
    const b = structure.blocks.find((x) => x.name === block[1]);
    const last = b?.sublayers[b.sublayers.length - 1];
    if (last) return { id: name, kind: 'residual', tensor: last.residualAfter, block: b.name };
  }
  if (name === 'embed' && structure.blocks[0]) return { id: name, kind: 'residual', tensor: structure.blocks[0].residualIn, block: structure.blocks[0].name };
  const moduleOut = structure.captures.find((c) => c.kind === 'module-out' && c.module === name);
  if (moduleOut) return { ...moduleOut, id: name };
  const known = ['embed', ...structure.blocks.map((b) => `${b.name}.resid`)].join(', ');
  throw new ScalpelError(`no capture point "${name}": use ${known}, a module path (e.g. ${structure.modules[0]?.module}), or a capture id (e.g. ${structure.captures[1]?.id ?? structure.captures[0]?.id})`);
}

/** Every block's output, in forward order: the points a layer sweep compares. */
export function blockOutputs(structure: ModelStructure): string[] {
  return structure.blocks.filter((b) => b.sublayers.length).map((b) => `${b.name}.resid`);
}

/** Point names in forward order (where each one's tensor is first captured), each once: a slider's order. */
export function inForwardOrder(structure: ModelStructure, names: string[]): string[] {
  const at = new Map([...new Set(names)].map((n) => [n, structure.captures.findIndex((c) => c.tensor === resolvePoint(structure, n).tensor)] as const));
  return [...at.keys()].sort((x, y) => at.get(x)! - at.get(y)!);
}

/**
 * Sentences of a text, in order, each with its leading whitespace (so that tokenizing them one by one
 * gives the same tokens as the whole text for tokenizers that attach a space to the word after it).
 * A sentence ends at `.`, `!`, `?` or `…` (with closing quotes or brackets) before whitespace, or at a
 * blank line; the rule uses characters only, so the split is the same on every machine.
 */
export function splitSentences(text: string): { text: string; start: number; end: number }[] {
  const out: { text: string; start: number; end: number }[] = [];
  const boundary = /[.!?…]+["'”’»)\]]*(?=\s|$)|\n\s*\n/g;
  let start = 0;
  for (const m of text.matchAll(boundary)) {
    const end = m[0].startsWith('\n') ? m.index! : m.index! + m[0].length;
    push(start, end);
    start = end;
  }
  push(start, text.length);
  return out;

  function push(from: number, to: number): void {
    const piece = text.slice(from, to);
    if (piece.trim()) out.push({ text: piece, start: from, end: to });
  }
}
