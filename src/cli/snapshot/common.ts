// What the `conclave snapshot` subcommands share: their dependencies, flag parsing and the FILE argument,
// with Consul's error texts (command/snapshot/*/snapshot_*.go).

import { isHelpFlag, parseFlags, type FlagSpec, type ParsedFlags } from '../../config/index.js';
import type { TextOutput } from '../agent.js';
import type { Env, TransferTimeouts } from './http-client.js';

export interface SnapshotDeps {
  /** Consul's result lines only (`Saved and verified snapshot to index N`, inspect's table...). */
  readonly stdout: TextOutput;
  /** Errors and progress. */
  readonly stderr: TextOutput;
  /** stderr when it is a terminal (progress is then a redrawn bar); undefined otherwise. */
  readonly stderrTerminal?: NodeJS.WriteStream | undefined;
  /** Default: process.env. */
  readonly env?: Env;
  readonly timeouts?: TransferTimeouts;
  /** How often plain progress lines may appear off a terminal. Default 5 s. */
  readonly progressIntervalMs?: number;
}

export type FlagsOrExit = { readonly ok: true; readonly flags: ParsedFlags } | { readonly ok: false; readonly code: number };

/** Parses a subcommand's flags; a bad flag is reported on stderr (exit 1). */
export function parseSubcommandFlags(specs: readonly FlagSpec[], args: readonly string[], command: string, deps: SnapshotDeps): FlagsOrExit {
  const parsed = parseFlags(specs, args);
  if (parsed.ok) return { ok: true, flags: parsed.flags };
  deps.stderr.write(`${parsed.message}\nRun "conclave snapshot ${command} -h" for its usage and flags.\n`);
  return { ok: false, code: 1 };
}

/** The one FILE argument, or Consul's error for none or several (reported on stderr). */
export function fileArgument(flags: ParsedFlags, deps: SnapshotDeps): string | undefined {
  const args = flags.args;
  if (args.length === 0) {
    deps.stderr.write('Missing FILE argument\n');
    return undefined;
  }
  if (args.length > 1) {
    deps.stderr.write(`Too many arguments (expected 1, got ${args.length})\n`);
    return undefined;
  }
  return args[0];
}

/** True when a help flag appears before `--`, wherever it is (as mitchellh/cli decides). */
export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--') === -1 ? args.length : args.indexOf('--');
  return args.slice(0, end).some(isHelpFlag);
}

/** Go's %q for the paths in `Error renaming "<a>" to "<b>"`. */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}

export type Subcommand =
  | { readonly ok: true; readonly flags: ParsedFlags; readonly file: string; readonly fail: (line: string) => number }
  | { readonly ok: false; readonly code: number };

/**
 * What every subcommand starts with: its flags and its one FILE argument (each reported on stderr
 * when wrong), and `fail`, which writes a line to stderr and gives the exit status 1.
 */
export function startSubcommand(specs: readonly FlagSpec[], args: readonly string[], command: string, deps: SnapshotDeps): Subcommand {
  const parsed = parseSubcommandFlags(specs, args, command, deps);
  if (!parsed.ok) return parsed;
  const file = fileArgument(parsed.flags, deps);
  if (file === undefined) return { ok: false, code: 1 };
  const fail = (line: string): number => {
    deps.stderr.write(`${line}\n`);
    return 1;
  };
  return { ok: true, flags: parsed.flags, file, fail };
}
