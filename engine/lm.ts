/**
 * A causal language model on disk: the ONNX file, its tokenizer and its context length.
 * `models/polyglot` (a folder with model.onnx, tokenizer.json, config.json) or a single .onnx file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScalpelError, fileError, readTextFile } from './errors';
import { OnnxModel, ValueInfo, openModel } from './onnx/model';
import { TextTokenizer, loadTokenizer } from './tokenizer';

export interface LanguageModel {
  /** Absolute path of the .onnx file. */
  file: string;
  /** The model's index over a read-only descriptor (closed when the model is collected); weights stay on disk. */
  onnx: OnnxModel;
  tokenizer: TextTokenizer;
  /** Longest sequence the model accepts (learned positions). */
  contextLength: number;
  /** Whether contextLength is DEFAULT_CONTEXT for want of a setting (rotary models without config.json). */
  contextAssumed: boolean;
  /** Name of the token-id input and of the logits output. */
  inputName: string;
  logitsName: string;
  /**
   * Inputs of a decoder exported with its cache (`past_key_values.N.key`, optimum's
   * `use_cache_branch`): scoring feeds them empty (no past) and false.
   */
  pastInputs: ValueInfo[];
}

/**
 * Files beside a model that evaluation (config.json: the context length; tokenizer.json) and Hugging Face
 * loaders read; an edited model written to another folder gets copies of them.
 */
export const MODEL_SIDECARS = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
  'added_tokens.json', 'vocab.json', 'merges.txt', 'vocab.txt', 'tokenizer.model',
];

/** The context length of a model whose config.json does not say it and that has no learned position table. */
export const DEFAULT_CONTEXT = 512;

/** Closes a language model's descriptor once nothing refers to the model any more. */
const descriptors = new FinalizationRegistry<() => void>((close) => close());

export interface OpenOptions {
  /** A tokenizer.json path, or `bytes`; default: tokenizer.json beside the model. */
  tokenizer?: string;
  /** Overrides config.json. */
  contextLength?: number;
}

export function openLanguageModel(location: string, opts: OpenOptions = {}): LanguageModel {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(location);
  } catch (err) {
    throw fileError(err, location, 'open model');
  }
  const dir = stat.isDirectory() ? location : path.dirname(location);
  const file = path.resolve(stat.isDirectory() ? path.join(location, 'model.onnx') : location);
  const onnx = openModel(file);
  let lm: LanguageModel;
  try {
    lm = describe(onnx, dir, file, opts);
  } catch (err) {
    onnx.close();
    throw err;
  }
  descriptors.register(onnx, onnx.close);
  return lm;
}

function describe(onnx: OnnxModel, dir: string, file: string, opts: OpenOptions): LanguageModel {
  const tokenizerPath = opts.tokenizer ?? path.join(dir, 'tokenizer.json');
  if (!opts.tokenizer && !fs.existsSync(tokenizerPath)) {
    throw new ScalpelError(`no tokenizer.json beside the model; pass --tokenizer FILE (or --tokenizer bytes)`, file);
  }
  const tokenizer = loadTokenizer(tokenizerPath);
  const initializerNames = onnx.initializers;
  const dataInputs = onnx.inputs.filter((i) => !initializerNames.has(i.name));
  const input = dataInputs.find((i) => i.name === 'input_ids') ?? dataInputs.find((i) => i.elemType === 7);
  if (!input) throw new ScalpelError('the model has no int64 token-id input', file);
  const pastInputs = dataInputs.filter((i) => /^past_key_values\.|^past\.|^use_cache_branch$/.test(i.name));
  const unsupported = dataInputs.filter((i) => i !== input && !pastInputs.includes(i) && !['attention_mask', 'position_ids'].includes(i.name));
  if (unsupported.length) {
    throw new ScalpelError(`unsupported model input ${unsupported[0].name} (expected input_ids, attention_mask, position_ids, past_key_values.*)`, file);
  }
  const logits = onnx.outputs.find((o) => o.name === 'logits') ?? onnx.outputs.find((o) => o.shape?.length === 3);
  if (!logits) throw new ScalpelError('the model has no logits output (a [batch, sequence, vocab] tensor)', file);
  const positions = learnedPositions(onnx);
  if (opts.contextLength !== undefined && positions !== undefined && opts.contextLength > positions) {
    throw new ScalpelError(`context length ${opts.contextLength} is longer than the model's learned position table (${positions} positions)`, file);
  }
  const known = opts.contextLength ?? configuredContext(dir) ?? positions;
  return {
    file,
    onnx,
    tokenizer,
    contextLength: known ?? DEFAULT_CONTEXT,
    contextAssumed: known === undefined,
    inputName: input.name,
    logitsName: logits.name,
    pastInputs,
  };
}

function configuredContext(dir: string): number | undefined {
  const configFile = path.join(dir, 'config.json');
  if (!fs.existsSync(configFile)) return undefined;
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readTextFile(configFile, 'read model config'));
  } catch (err) {
    throw new ScalpelError(`invalid JSON: ${(err as Error).message}`, configFile);
  }
  for (const key of ['n_positions', 'n_ctx', 'max_position_embeddings']) {
    if (typeof config[key] === 'number') return config[key] as number;
  }
  return undefined;
}

/** A learned position table's first dimension: positions past it have no embedding. */
function learnedPositions(onnx: OnnxModel): number | undefined {
  for (const t of onnx.initializers.values()) {
    if (/(^|[./])(wpe|position_embeddings?|pos_emb)[./]/.test(t.name) && t.dims.length === 2) return t.dims[0];
  }
  return undefined;
}

/** The one line saying that a model's context length is assumed, or undefined when it is known. */
export function assumedContextNote(lm: LanguageModel): string | undefined {
  if (!lm.contextAssumed) return undefined;
  return `${lm.file}: context length unknown (no n_positions or max_position_embeddings in config.json, no learned position table); using ${DEFAULT_CONTEXT} (set it with --context N, with \`context N\` in a spec's model block, or in config.json)`;
}
