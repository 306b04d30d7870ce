import { Command } from '../command';
import { evalCommand } from './eval';
import { decomposeCommand } from './decompose';
import { labelCommand } from './label';
import { componentsCommand } from './components';
import { checkCommand } from './check';
import { fmtCommand } from './fmt';
import { lspCommand } from './lsp';
import { dapCommand } from './dap';
import { applyCommand } from './apply';
import { diffCommand } from './diff';
import { reviewCommand } from './review';
import { geometryCommand } from './geometry';
import { mergeCommand } from './merge';
import { k8sCommand } from './k8s';

/** Every subcommand, in the order `scalpel --help` lists them. */
export const commands: Command[] = [evalCommand, mergeCommand, k8sCommand, decomposeCommand, labelCommand, componentsCommand, checkCommand, fmtCommand, lspCommand, dapCommand, applyCommand, diffCommand, reviewCommand, geometryCommand];
