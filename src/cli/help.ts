// Help texts, in the layout of Consul's CLI (mitchellh/cli's command list, command/flags/usage.go's
// flag list). The flag and key lists are generated from src/config's tables, so they cannot drift.

import { agentFlags, configKeys, formatFlagHelp, keySpecs, wrap } from '../config/index.js';
import { snapshotSynopsis } from './snapshot/help.js';

export interface CommandInfo {
  readonly name: string;
  readonly synopsis: string;
}

export const commands: readonly CommandInfo[] = [
  { name: 'agent', synopsis: 'Runs a Conclave server agent' },
  { name: 'catalog', synopsis: 'Interact with the catalog' },
  { name: 'kv', synopsis: 'Interact with the key-value store' },
  { name: 'lock', synopsis: 'Execute a command holding a lock' },
  { name: 'members', synopsis: 'Lists the members of a Conclave cluster' },
  { name: 'operator', synopsis: 'Provides cluster-level tools for Conclave operators' },
  { name: 'snapshot', synopsis: snapshotSynopsis },
  { name: 'version', synopsis: 'Prints the Conclave version' },
];

/** `conclave --help`, and what is printed (to stderr) for no command or an unknown one. */
export function topHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'Usage: conclave [--version] [--help] <command> [<args>]',
    '',
    'Available commands are:',
    ...commands.map((c) => `    ${c.name.padEnd(width)}    ${c.synopsis}`),
    '',
    'Run "conclave <command> -h" for the options of a command.',
    '',
  ].join('\n');
}

const agentUsage = `Usage: conclave agent [options]

  Starts a Conclave server and runs until an interrupt is received. The
  server is one member of a Raft cluster and serves Consul's HTTP API.

  Settings come from JSON config files that use Consul's key names, and
  from the flags below. Files apply in the order given (later values
  win), flags win over every file, and list values such as retry_join
  are combined from all sources. A bad key or value stops the agent
  before it writes anything.

  Examples:

    A server of the local 3-server cluster (npm start runs all three):

      conclave agent -config-file cluster-config/local-3/node1.json

    A throwaway server for development (data in a temporary directory,
    removed when it stops; nothing is kept):

      conclave agent -dev

    The first of three servers on three machines, without a file:

      conclave agent -node=server-1 -data-dir=/var/lib/conclave \\
        -bind=10.0.0.1 -bootstrap-expect=3 \\
        -retry-join=10.0.0.2 -retry-join=10.0.0.3

    A server that also knows a server of another datacenter:

      conclave agent -config-file dc1.json -retry-join-wan=10.1.0.1

  Flags take "-flag value", "-flag=value" or "--flag"; boolean flags
  take "-flag" or "-flag=false". SIGINT or SIGTERM shuts the agent down
  cleanly (exit status 0); a second one exits at once with status 1.`;

/** `conclave agent -h`: usage, examples, every flag, every config key (also in src/config/README.md). */
export function agentHelp(): string {
  const keys = configKeys.flatMap((key) => {
    const spec = keySpecs[key];
    const flag = spec.flag === undefined ? '' : `; flag -${spec.flag.name}`;
    return [`  ${key} (${spec.type})`, ...wrap(`${spec.doc} (default: ${spec.defaultText}${flag})`, 72 - 5).map((line) => `     ${line}`), ''];
  });
  return [
    agentUsage,
    '',
    'Command Options',
    '',
    formatFlagHelp(agentFlags),
    'Config File Keys',
    '',
    '  JSON; a dotted key is a nested object: "ports": {"http": 8500}.',
    '',
    ...keys,
  ].join('\n');
}

export function versionText(version: string): string {
  return `Conclave v${version}\n`;
}
