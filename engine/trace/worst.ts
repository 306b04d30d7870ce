/**
 * Where an edit hurts most: the document of a dataset and the token in it with the largest loss
 * increase (edited − base), each document scored on its own from its start, as a debugger traces it.
 */
import { Dataset } from '../data';
import { ScalpelError } from '../errors';
import { Evaluator, tokenizeDataset } from '../evaluate';

export interface WorstToken {
  /** Index of the document in the dataset. */
  document: number;
  /** Token index in the document's token ids (the start token counts): the position that predicts the next token. */
  position: number;
  base: number;
  edited: number;
}

/** Scans at most `maxDocuments` documents, each cut to the model's context; `signal` stops it between ORT runs. */
export async function largestLossIncrease(base: Evaluator, edited: Evaluator, ds: Dataset, maxDocuments = 64, signal?: AbortSignal): Promise<WorstToken> {
  const ctx = base.lm.contextLength;
  let worst: WorstToken | undefined;
  for (const [document, doc] of ds.documents.slice(0, maxDocuments).entries()) {
    const t = tokenizeDataset({ ...ds, documents: [doc] }, base.lm.tokenizer, ctx);
    if (t.ids.length < 2) continue;
    const [b, e] = [(await base.evaluate(t, { signal })).perToken, (await edited.evaluate(t, { signal })).perToken];
    for (let p = 0; p < b.length; p++) {
      if (!worst || e[p] - b[p] > worst.edited - worst.base) worst = { document, position: p, base: b[p], edited: e[p] };
    }
  }
  if (!worst) throw new ScalpelError(`dataset ${ds.name} has no document with two tokens to score`);
  return worst;
}
