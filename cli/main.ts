/**
 * `scalpel`: the command line over the engine. User errors print one line and exit 2;
 * anything else is a bug and says so (the stack only with SCALPEL_DEBUG=1).
 */
import { ScalpelError } from '../engine/errors';
import { commands } from './commands';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`usage: scalpel COMMAND [options]\n\n${commands.map((c) => `  ${c.name.padEnd(12)}${c.summary}`).join('\n')}\n\nscalpel COMMAND --help for a command's options\n`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) throw new ScalpelError(`unknown command "${name}" (see scalpel --help)`);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.usage + '\n');
    return 0;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ScalpelError) {
      process.stderr.write(`scalpel: ${err.format()}\n`);
    } else if ((err as { code?: string })?.code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`scalpel: ${(err as Error).message}\n`);
    } else {
      process.stderr.write(`scalpel: internal error: ${(err as Error)?.message ?? err}\n`);
      if (process.env.SCALPEL_DEBUG) process.stderr.write(`${(err as Error)?.stack}\n`);
    }
    process.exitCode = 2;
  },
);
