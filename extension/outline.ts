/**
 * What the extension needs to know about a spec's text without running anything: its edits and probes
 * (for code lenses), guards and expectations (for Test Explorer), with their ranges. It uses the language's own
 * parser, which never throws, so a half-typed spec still gets lenses and tests for its good parts.
 */
import { parse } from '../language/parser';

export interface OutlineItem {
  kind: 'data' | 'edit' | 'guard' | 'probe' | 'expect';
  /** Edit or guard name; for expectations, `edit: metric change op bound unit` as written. */
  label: string;
  /** The edit an expectation is about. */
  edit?: string;
  start: number;
  end: number;
  /** 1-based line of the declaration's first character (what check results carry). */
  line: number;
}

export function outline(text: string): OutlineItem[] {
  const lineOf = (offset: number) => {
    let n = 1;
    for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
    return n;
  };
  const items: OutlineItem[] = [];
  for (const d of parse(text).file.decls) {
    const at = { start: d.start, end: d.end, line: lineOf(d.start) };
    if (d.kind === 'data' && d.name) items.push({ kind: 'data', label: d.name.text, ...at });
    else if (d.kind === 'edit' && d.name) items.push({ kind: 'edit', label: d.name.text, ...at });
    else if (d.kind === 'guard' && d.name) items.push({ kind: 'guard', label: d.name.text, ...at });
    else if (d.kind === 'probe' && d.name) items.push({ kind: 'probe', label: d.name.text, ...at });
    else if (d.kind === 'expect') items.push({ kind: 'expect', label: text.slice(d.start, d.end).replace(/^expect\s+/, '').replace(/\s+/g, ' ').trim(), edit: d.edit?.text, ...at });
  }
  return items;
}
