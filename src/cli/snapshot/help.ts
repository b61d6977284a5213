// Help texts of `conclave snapshot` and its subcommands, in the layout of Consul's
// (command/snapshot/*: usage, description, examples; then the flags as command/flags/usage.go lists them).

import { formatFlagHelp, type FlagSpec } from '../../config/index.js';

export const snapshotSynopsis = 'Saves, restores and inspects snapshots of Conclave server state';

export interface SubcommandInfo {
  readonly name: string;
  readonly synopsis: string;
}

export const snapshotSubcommands: readonly SubcommandInfo[] = [
  { name: 'decode', synopsis: 'Decodes a snapshot file into JSON lines' },
  { name: 'inspect', synopsis: 'Displays information about a Conclave snapshot file' },
  { name: 'restore', synopsis: 'Restores snapshot of Conclave server state' },
  { name: 'save', synopsis: 'Saves snapshot of Conclave server state' },
];

export function snapshotHelp(): string {
  const width = Math.max(...snapshotSubcommands.map((c) => c.name.length));
  return [
    'Usage: conclave snapshot <subcommand> [options] [args]',
    '',
    '  This command has subcommands for saving, restoring, and inspecting the state',
    '  of the Conclave servers for disaster recovery. These are atomic, point-in-time',
    '  snapshots which include key/value entries and the Raft index they were taken',
    '  at. The files use Consul\'s snapshot archive layout (gzip of tar: meta.json,',
    '  state.bin, SHA256SUMS); `conclave snapshot inspect` and `decode` read Consul\'s too.',
    '',
    '  If ACLs are enabled, a management token must be supplied in order to perform',
    '  snapshot operations.',
    '',
    '  Create a snapshot:',
    '',
    '      $ conclave snapshot save backup.snap',
    '',
    '  Restore a snapshot:',
    '',
    '      $ conclave snapshot restore backup.snap',
    '',
    '  Inspect a snapshot:',
    '',
    '      $ conclave snapshot inspect backup.snap',
    '',
    '  Print every record of a snapshot as a JSON line:',
    '',
    '      $ conclave snapshot decode backup.snap',
    '',
    '  For more examples, ask for subcommand help or view the documentation.',
    '',
    'Subcommands:',
    ...snapshotSubcommands.map((c) => `    ${c.name.padEnd(width)}    ${c.synopsis}`),
    '',
  ].join('\n');
}

const httpNote = [
  '  The agent is found at -http-addr, else $CONSUL_HTTP_ADDR, else',
  '  127.0.0.1:8500. The token is the first of: the file of -token-file, -token,',
  '  the file of $CONSUL_HTTP_TOKEN_FILE, $CONSUL_HTTP_TOKEN. It is sent in the',
  '  X-Consul-Token header and never printed.',
];

const saveUsage = [
  'Usage: conclave snapshot save [options] FILE',
  '',
  '  Retrieves an atomic, point-in-time snapshot of the state of the Conclave',
  '  servers, which includes key/value entries, and saves it to FILE. The file is',
  '  first written as FILE.unverified, read back and verified in full, and only',
  '  then renamed to FILE: a FILE that exists is a complete snapshot.',
  '',
  '  If ACLs are enabled, a management token must be supplied in order to perform',
  '  snapshot operations.',
  '',
  '  To create a snapshot from the leader server and save it to "backup.snap":',
  '',
  '    $ conclave snapshot save backup.snap',
  '',
  '  To create a potentially stale snapshot from any available server (useful if',
  '  no leader is available):',
  '',
  '    $ conclave snapshot save -stale backup.snap',
  '',
  ...httpNote,
  '',
  '  Progress goes to stderr; stdout gets one line:',
  '  "Saved and verified snapshot to index <N>".',
];

const restoreUsage = [
  'Usage: conclave snapshot restore [options] FILE',
  '',
  '  Restores an atomic, point-in-time snapshot of the state of the Conclave',
  '  servers, which includes key/value entries.',
  '',
  '  Restores involve a potentially dangerous low-level Raft operation that is not',
  '  designed to handle server failures during a restore. This command is',
  '  primarily intended to be used when recovering from a disaster, restoring into',
  '  a fresh cluster of Conclave servers.',
  '',
  '  If ACLs are enabled, a management token must be supplied in order to perform',
  '  snapshot operations.',
  '',
  '  To restore a snapshot from the file "backup.snap":',
  '',
  '    $ conclave snapshot restore backup.snap',
  '',
  ...httpNote,
  '  -stale is accepted and ignored: a restore always goes to the leader.',
];

const inspectUsage = [
  'Usage: conclave snapshot inspect [options] FILE',
  '',
  '  Displays information about a snapshot file on disk: its metadata, and the',
  '  count and size of its records by type. FILE is a snapshot archive (from',
  '  `snapshot save`, Conclave\'s or Consul\'s), or a raw state.bin with its',
  '  meta.json in the same directory.',
  '',
  '  To inspect the file "backup.snap":',
  '',
  '    $ conclave snapshot inspect backup.snap',
  '',
  '  To break the key/value space down by the first three key segments under',
  '  "vault/":',
  '',
  '    $ conclave snapshot inspect -kvdetails -kvdepth 3 -kvfilter vault/ \\',
  '        backup.snap',
];

const decodeUsage = [
  'Usage: conclave snapshot decode [options] FILE',
  '',
  '  Decodes snapshot data and outputs a stream of line delimited JSON objects of',
  '  the form:',
  '',
  '  {"Data":{<meta.json>},"Type":"SnapshotHeader"}',
  '  {"Data":{<json encoded record>},"Type":"<type name>"}',
  '  ...',
  '',
  '  Byte values (a key\'s Value) are base64, as Consul prints them. A record type',
  '  this version does not know prints as "Unknown(<n>)". The archive is verified',
  '  in full before the first line is printed. Snapshots hold secrets: mind where',
  '  the output goes.',
];

function withFlags(usage: readonly string[], flags: readonly FlagSpec[]): string {
  if (flags.length === 0) return `${usage.join('\n')}\n`;
  return [...usage, '', 'Command Options', '', formatFlagHelp(flags)].join('\n');
}

export function saveHelp(flags: readonly FlagSpec[]): string {
  return withFlags(saveUsage, flags);
}

export function restoreHelp(flags: readonly FlagSpec[]): string {
  return withFlags(restoreUsage, flags);
}

export function inspectHelp(flags: readonly FlagSpec[]): string {
  return withFlags(inspectUsage, flags);
}

export function decodeHelp(): string {
  return withFlags(decodeUsage, []);
}
