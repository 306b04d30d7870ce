/**
 * catalog.json streamed both ways, so that no single string holds the file (V8 caps a string at
 * 512 MiB, about 480,000 labelled components): the writer yields the text in chunks, the reader parses the
 * top-level object with its `"components"` array taken out, and each component on its own.
 */
import * as fs from 'node:fs';
import { ScalpelError, fileError, openReadOnly } from '../errors';
import type { Catalog } from './types';

/** Text pieces of about this many characters. */
const CHUNK = 1 << 20;

/**
 * catalog.json text: the header fields indented, then one component per line, so that a 40,000-component
 * catalog stays compact and a diff of a re-labelled catalog shows one line per changed component.
 */
export function* catalogJsonChunks(catalog: Catalog): Generator<string> {
  const { components, ...head } = catalog;
  const lines = JSON.stringify({ ...head, components: [] }, null, 1).split('\n');
  const close = lines.length - 1; // the closing brace; the line before it is ` "components": []`
  yield lines.slice(0, close - 1).join('\n') + '\n';
  if (!components.length) yield ' "components": []';
  else {
    let piece = ' "components": [\n';
    for (let i = 0; i < components.length; i++) {
      piece += `${i ? ',\n' : ''}  ${JSON.stringify(components[i])}`;
      if (piece.length >= CHUNK) {
        yield piece;
        piece = '';
      }
    }
    yield piece + '\n ]';
  }
  yield `\n${lines[close]}\n`;
}

/** Bytes read per system call. */
const READ_BYTES = 1 << 22;
/** The top-level object without its components becomes one string: bounded like any text read whole. */
const MAX_HEAD_BYTES = 64 << 20;
/** Smaller files are parsed as one string. */
const WHOLE_BELOW = 64 << 20;
/** Largest catalog.json read (streamed): 4M components of 2 KiB each. */
const MAX_CATALOG_BYTES = 8 * 2 ** 30;

/**
 * Parses a catalog.json of any JSON layout in pieces: every byte outside the top-level `"components"` array goes
 * to the head (parsed once, with the array left empty); the array's elements are parsed a read's worth at a time
 * (the complete elements of each piece, as one JSON array). The scanner tracks strings, escapes, nesting and the
 * commas between elements only; JSON.parse checks everything else, so invalid JSON is refused as a whole parse
 * would refuse it. `limit` bounds the number of components. A file under `wholeBelow` bytes is parsed whole
 * (JSON.parse is faster than the scan, and such a string is far below V8's limit); the options are for tests.
 */
export function readCatalogJson(file: string, shown: string, limit: number, opts: { readBytes?: number; wholeBelow?: number } = {}): unknown {
  const readBytes = opts.readBytes ?? READ_BYTES;
  const fd = openReadOnly(file, 'read component catalog', shown);
  const size = fs.fstatSync(fd).size;
  if (size > MAX_CATALOG_BYTES || size < (opts.wholeBelow ?? WHOLE_BELOW)) {
    try {
      if (size > MAX_CATALOG_BYTES) throw new ScalpelError(`cannot read component catalog: the file has ${(size / 2 ** 30).toFixed(1)} GiB, more than the ${MAX_CATALOG_BYTES / 2 ** 30} GiB read`, shown);
      const json = JSON.parse(fs.readFileSync(fd, 'utf8'));
      if (Array.isArray(json?.components) && json.components.length > limit) throw new ScalpelError(`bad catalog: more than ${limit} components`, shown);
      return json;
    } catch (err) {
      if (err instanceof SyntaxError) throw new ScalpelError(`invalid JSON: ${err.message}`, shown);
      throw err instanceof ScalpelError ? err : fileError(err, shown, 'read component catalog');
    } finally {
      fs.closeSync(fd);
    }
  }
  const head: Buffer[] = [];
  let headBytes = 0;
  let depth = 0;
  let inString = false;
  let escaped = false;
  // At depth 1: the bytes of the last string (a key, once a colon follows it) and the current key.
  let stringStart = -1;
  let lastString: Buffer[] = [];
  let key = '';
  // Inside the components array (depth 2 there): the elements parsed so far, the unfinished element's bytes
  // carried over from earlier pieces, and per piece where its run of elements starts and its last complete one ends.
  let inComponents = false;
  let components: unknown[] | undefined;
  let elements: unknown[] = [];
  let carry: Buffer[] = [];
  let inElement = false;
  let afterComma = false;
  let offset = 0; // of the piece's first byte in the file
  const invalid = (message: string, at: number): never => {
    throw new ScalpelError(`invalid JSON: ${message}`, shown, { offset: at });
  };
  const addHead = (b: Buffer) => {
    headBytes += b.length;
    if (headBytes > MAX_HEAD_BYTES) invalid(`more than ${MAX_HEAD_BYTES >> 20} MiB outside the "components" list`, offset);
    head.push(Buffer.from(b)); // a copy: the piece it comes from is not kept
  };
  /** Parses the complete elements `parts` hold (separated by commas and white space). */
  const parseRun = (parts: Buffer[], count: number, at: number) => {
    if (!count) return;
    let values: unknown[];
    try {
      values = JSON.parse(`[${Buffer.concat(parts).toString('utf8')}]`);
    } catch (err) {
      invalid(`components[${elements.length}…${elements.length + count - 1}]: ${(err as Error).message}`, at);
    }
    if (values!.length !== count) invalid(`components[${elements.length}…]: ${values!.length} values where ${count} were delimited`, at);
    for (const v of values!) elements.push(v);
    if (elements.length > limit) throw new ScalpelError(`bad catalog: more than ${limit} components`, shown);
  };
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(readBytes);
      let n: number;
      try {
        n = fs.readSync(fd, chunk, 0, readBytes, null);
      } catch (err) {
        throw fileError(err, shown, 'read component catalog');
      }
      if (n === 0) break;
      const buf = chunk.subarray(0, n);
      let from = 0; // first byte not yet given to the head (outside the components array)
      let runStart = inElement ? 0 : -1; // first byte of this piece's run of elements
      let runEnd = -1; // just past its last complete element
      let runCount = 0;
      let elementStart = -1; // of the unfinished element, where it starts in this piece
      if (stringStart >= 0) stringStart = 0;
      for (let i = 0; i < n; i++) {
        let b = buf[i];
        if (inString) {
          if (escaped) {
            escaped = false;
            continue;
          }
          while (b !== 0x22 && b !== 0x5c && ++i < n) b = buf[i];
          if (i === n) break;
          if (b === 0x5c) escaped = true;
          else {
            inString = false;
            if (stringStart >= 0) {
              lastString.push(Buffer.from(buf.subarray(stringStart, i + 1)));
              stringStart = -1;
            }
          }
          continue;
        }
        if (inComponents && depth === 2) {
          if (b === 0x2c || b === 0x5d) {
            if (inElement) {
              runEnd = i;
              runCount++;
              inElement = false;
            } else if (b === 0x2c || afterComma) invalid(`components: a value is missing before "${String.fromCharCode(b)}"`, offset + i);
            afterComma = b === 0x2c;
            if (b === 0x5d) {
              if (runCount) parseRun([...carry, buf.subarray(runStart, runEnd)], runCount, offset + runStart);
              carry = [];
              runStart = runEnd = -1;
              runCount = 0;
              depth = 1;
              inComponents = false;
              components = elements;
              from = i; // the closing bracket goes to the head
            }
            continue;
          }
          if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
          if (!inElement) {
            inElement = true;
            elementStart = i;
            if (runStart < 0) runStart = i;
          }
        }
        if (b === 0x22) {
          inString = true;
          if (depth === 1) {
            stringStart = i;
            lastString = [];
          }
        } else if (b === 0x3a && depth === 1) {
          key = Buffer.concat(lastString).toString('utf8');
          if (isComponentsKey(key)) components = undefined; // a repeated key: the last one wins, as in JSON.parse
        } else if (b === 0x2c && depth === 1) {
          key = '';
        } else if (b === 0x7b || b === 0x5b) {
          depth++;
          if (depth === 2 && b === 0x5b && isComponentsKey(key)) {
            addHead(buf.subarray(from, i + 1));
            inComponents = true;
            elements = [];
            afterComma = false;
          }
        } else if (b === 0x7d || b === 0x5d) {
          depth--;
        }
      }
      if (stringStart >= 0) lastString.push(Buffer.from(buf.subarray(stringStart, n)));
      if (inComponents) {
        // Complete elements are parsed now; an unfinished one is carried into the next piece.
        if (runCount) {
          parseRun([...carry, buf.subarray(runStart, runEnd)], runCount, offset + runStart);
          carry = [];
        }
        if (inElement) carry.push(Buffer.from(buf.subarray(elementStart < 0 ? 0 : elementStart, n)));
      } else addHead(buf.subarray(from, n));
      offset += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  if (inComponents) invalid('the file ends inside the "components" list', offset);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(head).toString('utf8'));
  } catch (err) {
    invalid((err as Error).message, 0);
  }
  if (components && json && typeof json === 'object' && !Array.isArray(json)) (json as { components: unknown[] }).components = components;
  return json;
}

function isComponentsKey(key: string): boolean {
  if (!key.includes('components') && !key.includes('\\')) return false;
  try {
    return JSON.parse(key) === 'components';
  } catch {
    return false;
  }
}
