import { Command } from '../command';
import { evalCommand } from './eval';

/** Every subcommand, in the order `scalpel --help` lists them. */
export const commands: Command[] = [evalCommand];
