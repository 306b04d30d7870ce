/**
 * Tokenizers: Hugging Face `tokenizer.json` (through tokenizers.js) and a plain byte-level one.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ScalpelError, readTextFile } from './errors';

export interface TextTokenizer {
  /** Where it came from: a file path, or `bytes`. */
  readonly source: string;
  /** One more than the largest token id. */
  readonly vocabSize: number;
  /** The token a document starts with (end-of-text for GPT-2-style models), if the tokenizer has one. */
  readonly bos: number | undefined;
  encode(text: string): number[];
  decode(ids: number[]): string;
  /** Readable text of one token (for tables and heatmaps). */
  tokenText(id: number): string;
}

const BOS_CANDIDATES = ['<|endoftext|>', '<|begin_of_text|>', '<s>', '<bos>', '<BOS>'];

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number> | [string, number][] };
  pre_tokenizer?: unknown;
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

export function loadTokenizer(spec: string): TextTokenizer {
  if (spec === 'bytes') return byteTokenizer();
  const text = readTextFile(spec, 'read tokenizer');
  let json: TokenizerJson;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ScalpelError(`not a tokenizer.json: ${(err as Error).message}`, spec);
  }
  if (!json || typeof json !== 'object' || !json.model || typeof json.model !== 'object') {
    throw new ScalpelError('not a tokenizer.json: it has no "model" section', spec);
  }
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(json, {});
  } catch (err) {
    throw new ScalpelError(`cannot load tokenizer: ${(err as Error).message}`, spec);
  }
  const vocab = json.model.vocab;
  const ids = Array.isArray(vocab) ? vocab.map((_, i) => i) : Object.values(vocab ?? {});
  for (const t of json.added_tokens ?? []) ids.push(t.id);
  const vocabSize = ids.reduce((a, b) => Math.max(a, b), -1) + 1;
  if (vocabSize <= 0) throw new ScalpelError('tokenizer has an empty vocabulary', spec);
  const bos = (json.added_tokens ?? []).find((t) => BOS_CANDIDATES.includes(t.content))?.id;
  const isByteLevel = JSON.stringify(json.pre_tokenizer ?? {}).includes('"ByteLevel"');
  return {
    source: spec,
    vocabSize,
    bos,
    encode: (s) => {
      const { ids, tokens } = hf.encode(s, { add_special_tokens: false });
      // Vocabularies without an unknown token give no id for text they cannot cover.
      const missing = ids.findIndex((id: number | undefined) => typeof id !== 'number');
      if (missing >= 0) throw new ScalpelError(`tokenizer has no token for ${JSON.stringify(tokens[missing])} (and no unknown token)`, spec);
      return ids;
    },
    decode: (tokens) => (tokens.length ? hf.decode(tokens) : ''),
    tokenText: (id) => {
      const text = hf.decode([id]);
      // A byte-level token that is part of a multi-byte character decodes to U+FFFD: show its bytes instead.
      if (!text.includes('\ufffd') || !isByteLevel) return text;
      const piece = hf.id_to_token(id);
      return piece === undefined ? text : byteLevelText(piece);
    },
  };
}

/** Bytes are tokens 0..255 (UTF-8); no special tokens. */
export function byteTokenizer(): TextTokenizer {
  const decoder = new TextDecoder('utf-8', { fatal: false });
  return {
    source: 'bytes',
    vocabSize: 256,
    bos: undefined,
    encode: (s) => Array.from(Buffer.from(s, 'utf8')),
    decode: (ids) => decoder.decode(Uint8Array.from(ids)),
    tokenText: (id) => (id >= 32 && id < 127 ? String.fromCharCode(id) : `<0x${id.toString(16).padStart(2, '0')}>`),
  };
}

/** GPT-2's byte-level alphabet: printable characters standing for bytes 0..255. */
const BYTE_OF_CHAR = (() => {
  const printable = [...range(33, 126), ...range(161, 172), ...range(174, 255)];
  const map = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) map.set(String.fromCharCode(printable.includes(b) ? b : 256 + extra++), b);
  return map;
})();

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** A byte-level token's bytes as text: valid UTF-8 runs as characters, stray bytes as `\xNN`. */
function byteLevelText(piece: string): string {
  const bytes = Array.from(piece, (ch) => BYTE_OF_CHAR.get(ch) ?? 0x3f);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    let j = bytes.length;
    for (; j > i; j--) {
      try {
        out += decoder.decode(Uint8Array.from(bytes.slice(i, j)));
        break;
      } catch {
        // shorter prefix
      }
    }
    if (j === i) {
      out += `\\x${bytes[i].toString(16).toUpperCase().padStart(2, '0')}`;
      i++;
    } else {
      i = j;
    }
  }
  return out;
}
