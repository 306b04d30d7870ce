/**
 * Component and neuron keys, the one place they are parsed and formatted.
 *
 *     h.1.mlp.c_fc:41     component 41 of module h.1.mlp.c_fc (a catalog component)
 *     h.1.mlp.c_fc:n41    output unit 41 of the module's weight (neuron basis)
 *     h.1.mlp.c_fc:i41    input unit 41
 *
 * The form is the one SPD's tools use, so decompositions and labels can be brought from them.
 */
import { ScalpelError } from '../errors';
import type { Catalog, ComponentInfo } from './types';

export interface ComponentKey {
  module: string;
  index: number;
}

export interface NeuronKey {
  module: string;
  /** `out`: output unit (`nJ`), `in`: input unit (`iJ`). */
  side: 'in' | 'out';
  index: number;
}

/** Where a key was written, for error messages. */
interface At {
  file?: string;
  line?: number;
  column?: number;
}

export function componentKey(module: string, index: number): string {
  return `${module}:${index}`;
}

/** A key to show in messages: the catalog's first component, or the generic form when there is none. */
export function exampleKey(modules: readonly { path: string; components: number }[] = []): string {
  const first = modules.find((m) => m.components > 0);
  return first ? componentKey(first.path, 0) : '<module>:<index>';
}

export function neuronKey(module: string, side: 'in' | 'out', index: number): string {
  return `${module}:${side === 'out' ? 'n' : 'i'}${index}`;
}

/** The module path of any key (component or neuron): everything before the last colon. */
export function keyModule(key: string): string {
  const colon = key.lastIndexOf(':');
  return colon < 0 ? key : key.slice(0, colon);
}

/** `MODULE:INDEX` → its parts, or undefined when malformed (no throw: parsing specs never throws). */
export function parseComponentKey(key: string): ComponentKey | undefined {
  const colon = key.lastIndexOf(':');
  if (colon <= 0 || colon === key.length - 1 || !isDigits(key, colon + 1)) return undefined;
  const module = key.slice(0, colon);
  if (/[\s:]/.test(module)) return undefined;
  return { module, index: Number(key.slice(colon + 1)) };
}

/** `MODULE:nJ` / `MODULE:iJ` → its parts, or undefined when it is not a neuron key. */
export function parseNeuronKey(key: string): NeuronKey | undefined {
  const colon = key.lastIndexOf(':');
  const side = key[colon + 1];
  if (colon <= 0 || (side !== 'n' && side !== 'i') || colon + 2 >= key.length || !isDigits(key, colon + 2)) return undefined;
  const module = key.slice(0, colon);
  if (/[\s:]/.test(module)) return undefined;
  return { module, side: side === 'n' ? 'out' : 'in', index: Number(key.slice(colon + 2)) };
}

export function isNeuronKey(key: string): boolean {
  return parseNeuronKey(key) !== undefined;
}

/** A component key, or one clear error naming where it was written. */
export function requireComponentKey(key: string, at?: At, modules?: readonly { path: string; components: number }[]): ComponentKey {
  const k = parseComponentKey(key);
  if (!k) throw new ScalpelError(`"${key}" is not a component key (expected MODULE:INDEX, e.g. ${exampleKey(modules)})`, at?.file, at);
  return k;
}

/** A neuron key, or one clear error naming where it was written. */
export function requireNeuronKey(key: string, at?: At): NeuronKey {
  const k = parseNeuronKey(key);
  if (!k) throw new ScalpelError(`"${key}" is not a neuron key (expected MODULE:nJ or MODULE:iJ)`, at?.file, at);
  return k;
}

/** The catalog's components by key (keep it while the catalog's component list is unchanged). */
export function componentsByKey(catalog: Pick<Catalog, 'components'>): Map<string, ComponentInfo> {
  return new Map(catalog.components.map((c) => [c.key, c]));
}

function isDigits(s: string, from: number): boolean {
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}
