/** `--context N`, and the one line said when a model's context length is assumed. */
import { DEFAULT_CONTEXT, LanguageModel, assumedContextNote } from '../engine/lm';

export const contextFlag = { context: { type: 'string' } } as const;

/** The usage line, its text starting at column `width` like the command's other options. */
export function contextUsage(width: number): string {
  return `${'  --context N'.padEnd(width)}the model's context length (default: config.json's, or the learned position
${' '.repeat(width)}table's; else ${DEFAULT_CONTEXT}, and said)`;
}

const said = new Set<string>();

/** Writes, once per model file, that its context length is assumed. */
export function sayAssumedContext(lm: LanguageModel): void {
  const note = assumedContextNote(lm);
  if (!note || said.has(lm.file)) return;
  said.add(lm.file);
  process.stderr.write(`scalpel: ${note}\n`);
}
