import { parseArgs } from 'node:util';
import { Command } from '../command';
import { ScalpelDebugSession } from '../../debugger/session';

const usage = `scalpel dap

Runs the Scalpel debug adapter (Debug Adapter Protocol) over stdin/stdout, for editors: VS Code
starts it for launch configurations of type "scalpel". See docs/debugger.md for the attributes.`;

export const dapCommand: Command = {
  name: 'dap',
  summary: 'debug adapter over stdio (step through a forward pass, base vs edited)',
  usage,
  async run(argv) {
    parseArgs({ args: argv, options: {}, strict: true, allowPositionals: false });
    const session = new ScalpelDebugSession();
    // stdout carries the protocol: nothing else may write there while the session runs.
    session.start(process.stdin, process.stdout);
    await new Promise<void>((resolve) => process.stdin.once('close', resolve));
    return 0;
  },
};
