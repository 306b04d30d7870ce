import { parseArgs } from 'node:util';
import { Command } from '../command';
import { ScalpelError } from '../../engine/errors';
import { startStdioServer } from '../../language/server';

const usage = `scalpel lsp --stdio

Runs the Scalpel language server (diagnostics, completion with component labels, hover,
definition, references, rename, symbols, semantic tokens, formatting, folding, quick fixes)
over stdin/stdout. Editors start it; the VS Code extension does so by itself.

  --stdio                    talk JSON-RPC over stdin/stdout (the only transport)
  --diagnostics-delay MS     wait this long after the last change before checking (default 50)
  --clientProcessId PID      exit when this process (the editor) is gone`;

export const lspCommand: Command = {
  name: 'lsp',
  summary: 'run the .scalpel language server (--stdio)',
  usage,
  run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { stdio: { type: 'boolean', default: false }, 'diagnostics-delay': { type: 'string' }, clientProcessId: { type: 'string' } },
      strict: true,
    });
    if (!values.stdio) throw new ScalpelError('lsp needs --stdio (the only transport)');
    const delayArg = values['diagnostics-delay'];
    const delay = delayArg === undefined ? undefined : Number(delayArg);
    if (delay !== undefined && !(Number.isFinite(delay) && delay >= 0)) throw new ScalpelError(`--diagnostics-delay must be a number of milliseconds, not "${delayArg}"`);
    const parent = values.clientProcessId === undefined ? undefined : Number(values.clientProcessId);
    if (parent !== undefined && !Number.isInteger(parent)) throw new ScalpelError(`--clientProcessId must be a process id, not "${values.clientProcessId}"`);
    startStdioServer({ diagnosticsDelayMs: delay });
    if (parent !== undefined) {
      // An editor that dies without `exit` must not leave the server behind.
      setInterval(() => {
        try {
          process.kill(parent, 0);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ESRCH') process.exit(1);
        }
      }, 3000).unref();
    }
    // The server runs until the client sends exit (vscode-languageserver ends the process then).
    return new Promise<number>(() => undefined);
  },
};
