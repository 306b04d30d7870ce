/**
 * `npm run fuzz [-- COUNT [SEED]]`: the spec fuzzer at length (default 100,000 mutated specs).
 * Prints progress and the counts that must stay 0: throws, and steps over 1 s of CPU.
 */
import { fuzzSpecs } from '../test/language/fuzz';

const n = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? 1);
const started = Date.now();
const c = fuzzSpecs(n, seed, 1000, (done, counts) => {
  if (done % 5000 === 0) process.stderr.write(`${done}/${n} specs, ${counts.throws} throws, ${counts.slow} slow steps, ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
});
console.log(`specs: ${c.inputs} (seed ${seed}), largest ${c.largestInput} characters`);
console.log(`throws: ${c.throws}`);
console.log(`steps over 1 s of CPU: ${c.slow}`);
console.log(`reparse disagreeing with parse: ${c.incrementalMismatches}`);
console.log(`slowest step: ${c.slowestMs.toFixed(0)} ms CPU, ${c.slowestStep}`);
console.log(`wall time: ${((Date.now() - started) / 1000).toFixed(0)} s`);
for (const f of c.failures) console.log(`  ${f}`);
process.exitCode = c.throws || c.slow || c.incrementalMismatches ? 1 : 0;
