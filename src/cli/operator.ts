// `conclave operator raft list-peers|remove-peer|transfer-leader` (Consul's command/operator/raft/*) and
// `conclave members`: the agent's operator endpoints with Consul's flags and output; and `dispatch`, which
// runs a subcommand of these and of `conclave catalog` (catalog.ts).
//
//   operator raft list-peers                 a table: Node, ID, Address, State, Voter, RaftProtocol
//   operator raft remove-peer -id=ID | -address=IP:PORT
//   operator raft transfer-leader [-id=ID]
//
// Exit status 0 on success, 1 on any error.

import { lastFlag, type FlagSpec, type ParsedFlags } from '../config/index.js';
import { openCommand, type ApiClient } from './api-client.js';
import type { TextOutput } from './agent.js';
import { errorText, httpClientFlags, serverFlags, type Env } from './snapshot/http-client.js';

export interface OperatorDeps {
  readonly stdout: TextOutput;
  readonly stderr: TextOutput;
  readonly env?: Env;
}

const requestMs = 60_000;

/** A subcommand: its help, its flags, and what it does (a line for stderr and status 1 when it fails). */
export interface Command {
  readonly usage: string;
  readonly flags: readonly FlagSpec[];
  /** `out` writes a line to stdout, `note` one to stderr without failing the command. */
  readonly run: (client: ApiClient, flags: ParsedFlags, out: (line: string) => void, note: (line: string) => void) => Promise<string | undefined>;
}

const raftCommands: Readonly<Record<string, Command>> = {
  'list-peers': {
    usage: `Usage: conclave operator raft list-peers [options]

  Displays the current Raft peer configuration.`,
    flags: [...httpClientFlags, ...serverFlags],
    run: async (client, flags, out) => {
      const path = `/v1/operator/raft/configuration${lastFlag(flags, 'stale') === true ? '?stale=' : ''}`;
      const r = await client.json<{ Servers: Array<{ ID: string; Node: string; Address: string; Leader: boolean; Voter: boolean; ProtocolVersion: string }> }>({ method: 'GET', path, timeoutMs: requestMs });
      const rows = [['Node', 'ID', 'Address', 'State', 'Voter', 'RaftProtocol']];
      for (const s of r.value.Servers) rows.push([s.Node, s.ID, s.Address, s.Leader ? 'leader' : 'follower', String(s.Voter), s.ProtocolVersion === '' ? '<=1' : s.ProtocolVersion]);
      for (const line of columnize(rows)) out(line);
      return undefined;
    },
  },
  'remove-peer': {
    usage: `Usage: conclave operator raft remove-peer [options]

  Removes the Raft peer with the given -id or -address from the cluster's
  configuration. Use it for a server that failed and will not come back.`,
    flags: [
      ...httpClientFlags,
      ...serverFlags.filter((f) => f.name === 'datacenter'),
      { name: 'id', kind: 'string', valueName: 'id', usage: 'Remove a Raft peer with the given ID from the Raft configuration.' },
      { name: 'address', kind: 'string', valueName: 'IP:port', usage: 'Remove a Raft peer with the given address from the Raft configuration.' },
    ],
    run: async (client, flags, out) => {
      const id = lastFlag(flags, 'id');
      const address = lastFlag(flags, 'address');
      const hasId = typeof id === 'string' && id !== '';
      const hasAddress = typeof address === 'string' && address !== '';
      if (hasId === hasAddress) return 'Must specify either -id or -address';
      const query = hasId ? `id=${encodeURIComponent(id)}` : `address=${encodeURIComponent(String(address))}`;
      await client.request({ method: 'DELETE', path: `/v1/operator/raft/peer?${query}`, timeoutMs: requestMs });
      out(hasId ? `Removed peer with id "${id}"` : `Removed peer with address "${String(address)}"`);
      return undefined;
    },
  },
  'transfer-leader': {
    usage: `Usage: conclave operator raft transfer-leader [options]

  Transfers Raft leadership to the server with -id, or to any other voter.`,
    flags: [...httpClientFlags, { name: 'id', kind: 'string', valueName: 'id', usage: 'The ID of the server to transfer leadership to; any voter when absent.' }],
    run: async (client, flags, out) => {
      const id = lastFlag(flags, 'id');
      const path = typeof id === 'string' && id !== '' ? `/v1/operator/raft/transfer-leader?id=${encodeURIComponent(id)}` : '/v1/operator/raft/transfer-leader';
      await client.request({ method: 'POST', path, timeoutMs: requestMs });
      out('Success! Leadership transfer triggered.');
      return undefined;
    },
  },
};

const memberStatus: Readonly<Record<number, string>> = { 0: 'none', 1: 'alive', 2: 'leaving', 3: 'left', 4: 'failed' };

const membersCommand: Command = {
  usage: `Usage: conclave members [options]

  Outputs the members of the cluster, as consul members does: every server,
  alive when the leader has heard from it lately.`,
  flags: [...httpClientFlags, { name: 'status', kind: 'string', valueName: 'regexp', usage: 'If provided, output is filtered to only nodes matching the regular expression for status.' }],
  run: async (client, flags, out) => {
    const r = await client.json<Array<{ Name: string; Addr: string; Port: number; Tags: Record<string, string>; Status: number; ProtocolCur: number }>>({ method: 'GET', path: '/v1/agent/members', timeoutMs: requestMs });
    const statusFlag = lastFlag(flags, 'status');
    let filter: RegExp | undefined;
    try {
      filter = typeof statusFlag === 'string' && statusFlag !== '' ? new RegExp(statusFlag) : undefined;
    } catch (err) {
      return `Failed to compile status regexp: ${errorText(err)}`;
    }
    const members = r.value
      .map((m) => ({ m, status: memberStatus[m.Status] ?? 'unknown' }))
      .filter(({ status }) => filter === undefined || filter.test(status))
      .sort((a, b) => (a.m.Name < b.m.Name ? -1 : a.m.Name > b.m.Name ? 1 : 0));
    if (members.length === 0) return undefined;
    const rows = [['Node', 'Address', 'Status', 'Type', 'Build', 'Protocol', 'DC', 'Partition', 'Segment']];
    for (const { m, status } of members) {
      const address = m.Addr.includes(':') ? `[${m.Addr}]:${m.Port}` : `${m.Addr}:${m.Port}`;
      rows.push([m.Name, address, status, 'server', m.Tags['build'] ?? '', String(m.ProtocolCur), m.Tags['dc'] ?? '', 'default', '<all>']);
    }
    for (const line of columnize(rows)) out(line);
    return undefined;
  },
};

export function runMembersCommand(args: readonly string[], deps: OperatorDeps): Promise<number> {
  return dispatch('', { members: membersCommand }, ['members', ...args], deps, '');
}

export function operatorHelp(): string {
  return `Usage: conclave operator raft <subcommand> [options]

  Inspects and changes the cluster's Raft peers, as consul operator raft does.

Subcommands:
    list-peers         Display the current Raft peer configuration
    remove-peer        Remove a Conclave server from the Raft configuration
    transfer-leader    Transfer Raft leadership to another Conclave server
`;
}

/** `conclave operator <args>`: only `raft` has subcommands today, as in Consul's most used part. */
export function runOperatorCommand(args: readonly string[], deps: OperatorDeps): Promise<number> {
  if (args[0] !== 'raft') {
    const help = args[0] === undefined || ['-h', '-help', '--help'].includes(args[0]);
    (help && args[0] !== undefined ? deps.stdout : deps.stderr).write(operatorHelp());
    return Promise.resolve(help && args[0] !== undefined ? 0 : 1);
  }
  return dispatch('operator raft', raftCommands, args.slice(1), deps, operatorHelp());
}

/** Runs `<name> <args>` from `table`: help, flags, the agent client, the command, its exit status. */
export async function dispatch(name: string, table: Readonly<Record<string, Command>>, args: readonly string[], deps: OperatorDeps, help: string): Promise<number> {
  const sub = args[0];
  if (sub === undefined || ['-h', '-help', '--help'].includes(sub)) {
    (sub === undefined ? deps.stderr : deps.stdout).write(help);
    return sub === undefined ? 1 : 0;
  }
  const command = table[sub];
  if (command === undefined) {
    deps.stderr.write(`Unknown subcommand: ${JSON.stringify(sub)} (subcommands: ${Object.keys(table).join(', ')})\n\n${help}`);
    return 1;
  }
  const opened = await openCommand(command.flags, args.slice(1), name === '' ? sub : `${name} ${sub}`, command.usage, deps);
  if (!opened.ok) return opened.code;
  const { flags, client } = opened;
  try {
    if (flags.args.length > 0) {
      deps.stderr.write(`Too many arguments (expected 0, got ${flags.args.length})\n`);
      return 1;
    }
    const problem = await command.run(client, flags, (line) => void deps.stdout.write(`${line}\n`), (line) => void deps.stderr.write(`${line}\n`));
    if (problem === undefined) return 0;
    deps.stderr.write(`${problem}\n`);
    return 1;
  } catch (err) {
    deps.stderr.write(`Error: ${errorText(err)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** ryanuber/columnize, as Consul's CLI uses it: columns separated by two spaces, the last unpadded. */
export function columnize(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '));
}
