/** What every `scalpel` subcommand provides; `cli/main.ts` dispatches on `name`. */
export interface Command {
  name: string;
  /** One line for `scalpel --help`. */
  summary: string;
  /** Full usage text for `scalpel NAME --help`. */
  usage: string;
  /** Returns the process exit code. Throws ScalpelError for user errors. */
  run(args: string[]): Promise<number>;
}
