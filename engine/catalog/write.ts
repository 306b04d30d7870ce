/**
 * Writing catalogs: tensors first, catalog.json last, each atomically (temporary file + rename),
 * so a reader never sees a catalog.json that points at missing or half-written tensors.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileError } from '../errors';
import { NamedTensor, writeFileAtomic, writeSafetensors } from '../safetensors';
import { catalogJsonChunks } from './stream';
import { CATALOG_FORMAT, Catalog } from './types';

/** Per module: V (dIn, C), U (C, dOut), optional residual (dOut, dIn); a factor left out is the identity. */
export interface ModuleTensors {
  module: string;
  V?: Float32Array;
  U?: Float32Array;
  residual?: Float32Array;
  /** Further tensors stored as they are (e.g. SPD's `<module>.ci.*`). */
  extra?: NamedTensor[];
}

/**
 * Writes `catalog` (and, when given, its tensors) into `dir`. Unknown fields of `catalog` are kept
 * as they are, so a catalog from a newer tool survives a round trip.
 */
export function writeCatalog(dir: string, catalog: Catalog, tensors?: ModuleTensors[]): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw fileError(err, dir, 'create catalog folder');
  }
  const { dir: _ignored, ...plain } = catalog as Catalog & { dir?: string };
  const out: Catalog = { ...plain, format: CATALOG_FORMAT, tensors: catalog.tensors || 'components.safetensors', modules: plain.modules.map((m) => ({ ...m })) };
  if (tensors) {
    if (path.basename(out.tensors) !== out.tensors) throw new Error(`catalog "tensors" must be a file name in the catalog folder, not ${out.tensors}`);
    const named: NamedTensor[] = [];
    for (const t of tensors) {
      const m = out.modules.find((x) => x.path === t.module);
      if (!m) throw new Error(`tensors for ${t.module}, which the catalog does not list`);
      if (!t.V && !t.U) throw new Error(`tensors for ${t.module}: V and U cannot both be the identity`);
      delete m.identity;
      if (!t.V || !t.U) m.identity = t.V ? 'U' : 'V';
      const units = m.identity === 'U' ? m.dOut : m.identity === 'V' ? m.dIn : m.components;
      if (units !== m.components) throw new Error(`tensors for ${t.module}: an identity ${m.identity} of ${units} units for ${m.components} components`);
      if (t.V) named.push({ name: `${m.path}.V`, shape: [m.dIn, m.components], data: t.V });
      if (t.U) named.push({ name: `${m.path}.U`, shape: [m.components, m.dOut], data: t.U });
      if (t.residual) named.push({ name: `${m.path}.residual`, shape: [m.dOut, m.dIn], data: t.residual });
      m.hasResidual = Boolean(t.residual);
      named.push(...(t.extra ?? []));
    }
    writeSafetensors(path.join(dir, out.tensors), named, { format: CATALOG_FORMAT });
  }
  writeFileAtomic(path.join(dir, 'catalog.json'), catalogJsonChunks(out));
}
