// `conclave <command> [args]`: picks the command, as mitchellh/cli does for Consul. A help flag
// anywhere before "--" shows help (exit 0); --version, -version and -v before the command print the
// version; no command or an unknown one prints the command list to stderr and exits with 1.

import { conclaveVersion } from '../base/index.js';
import { isHelpFlag } from '../config/index.js';
import { runAgentCommand, type AgentCommandDeps } from './agent.js';
import { exitCodes } from './exit-codes.js';
import { agentHelp, commands, topHelp, versionText } from './help.js';
import { runKvCommand } from './kv.js';
import { runLockCommand } from './lock.js';
import { runCatalogCommand } from './catalog.js';
import { runMembersCommand, runOperatorCommand } from './operator.js';
import { runSnapshotCommand, type SnapshotDeps } from './snapshot/command.js';

export type CliDeps = AgentCommandDeps & Pick<SnapshotDeps, 'env' | 'stderrTerminal'>;

export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const end = argv.indexOf('--') === -1 ? argv.length : argv.indexOf('--');
  const help = argv.slice(0, end).some(isHelpFlag);
  const commandAt = argv.findIndex((a) => !a.startsWith('-'));
  const command = commandAt === -1 ? undefined : argv[commandAt];
  const before = argv.slice(0, commandAt === -1 ? argv.length : commandAt);

  if (command === undefined || before.some((a) => !isHelpFlag(a))) {
    if (before.some((a) => ['-v', '-version', '--version'].includes(a))) {
      deps.stdout.write(versionText(conclaveVersion()));
      return exitCodes.ok;
    }
    if (help && command === undefined) {
      deps.stdout.write(topHelp());
      return exitCodes.ok;
    }
    if (command === undefined) {
      deps.stderr.write(topHelp());
      return exitCodes.error;
    }
    deps.stderr.write(`Invalid flags before the subcommand. If these flags are for\nthe subcommand, please put them after the subcommand.\n\n${topHelp()}`);
    return exitCodes.error;
  }
  const args = argv.slice(commandAt + 1);
  switch (command) {
    case 'agent':
      if (help) {
        deps.stdout.write(agentHelp());
        return exitCodes.ok;
      }
      return runAgentCommand(args, deps);
    case 'kv':
      return runKvCommand(help && !args.some((a) => ['-h', '-help', '--help'].includes(a)) ? ['-h'] : args, deps);
    case 'members':
      return runMembersCommand(help && !args.some((a) => ['-h', '-help', '--help'].includes(a)) ? [...args, '-h'] : args, deps);
    case 'operator':
      return runOperatorCommand(help && !args.some((a) => ['-h', '-help', '--help'].includes(a)) ? [...args, '-h'] : args, deps);
    case 'catalog':
      return runCatalogCommand(help && !args.some((a) => ['-h', '-help', '--help'].includes(a)) ? [...args, '-h'] : args, deps);
    case 'lock':
      // Its own flags only: a -h inside the child command belongs to the child.
      return runLockCommand(args, deps);
    case 'snapshot':
      // The snapshot command shows its own help or a subcommand's; a help flag before "snapshot" counts.
      return runSnapshotCommand(help && !args.some(isHelpFlag) ? [...args, '-h'] : args, deps);
    case 'version':
      deps.stdout.write(versionText(conclaveVersion()));
      return exitCodes.ok;
    default: {
      const known = commands.map((c) => c.name).join(', ');
      deps.stderr.write(`Unknown command: ${JSON.stringify(command)} (commands: ${known})\n\n${topHelp()}`);
      return exitCodes.error;
    }
  }
}
