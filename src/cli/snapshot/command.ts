// `conclave snapshot <subcommand>`: save, restore, inspect, decode (Consul's `consul snapshot`; its
// Enterprise-only `snapshot agent` has no counterpart). No subcommand prints the help to stderr with
// status 1, a help flag prints it (or the subcommand's) to stdout with status 0, as mitchellh/cli does.
// Exit statuses: 0 on success, 1 on any error (src/cli/exit-codes.ts).

import { exitCodes } from '../exit-codes.js';
import { wantsHelp, type SnapshotDeps } from './common.js';
import { runDecode } from './decode.js';
import { verifyArchive } from './files.js';
import { decodeHelp, inspectHelp, restoreHelp, saveHelp, snapshotHelp, snapshotSubcommands } from './help.js';
import { inspectFlags, runInspect } from './inspect.js';
import { restoreFlags, runRestore } from './restore.js';
import { runSave, saveFlags } from './save.js';

export type { SnapshotDeps } from './common.js';

export async function runSnapshotCommand(args: readonly string[], deps: SnapshotDeps): Promise<number> {
  const sub = args[0];
  const rest = args.slice(1);
  if (sub === undefined) {
    deps.stderr.write(snapshotHelp());
    return exitCodes.error;
  }
  if (sub.startsWith('-')) {
    if (wantsHelp(args)) {
      deps.stdout.write(snapshotHelp());
      return exitCodes.ok;
    }
    deps.stderr.write(`Invalid flags before the subcommand: ${sub}\n\n${snapshotHelp()}`);
    return exitCodes.error;
  }
  const help = wantsHelp(rest);
  switch (sub) {
    case 'save':
      if (help) return printHelp(deps, saveHelp(saveFlags));
      return runSave(rest, deps, verifyArchive);
    case 'restore':
      if (help) return printHelp(deps, restoreHelp(restoreFlags));
      return runRestore(rest, deps);
    case 'inspect':
      if (help) return printHelp(deps, inspectHelp(inspectFlags));
      return runInspect(rest, deps);
    case 'decode':
      if (help) return printHelp(deps, decodeHelp());
      return runDecode(rest, deps);
    default: {
      const known = snapshotSubcommands.map((c) => c.name).join(', ');
      deps.stderr.write(`Unknown subcommand: ${JSON.stringify(sub)} (subcommands: ${known})\n\n${snapshotHelp()}`);
      return exitCodes.error;
    }
  }
}

function printHelp(deps: SnapshotDeps, text: string): number {
  deps.stdout.write(text);
  return exitCodes.ok;
}
