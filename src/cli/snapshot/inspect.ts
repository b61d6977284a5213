// `conclave snapshot inspect [options] FILE`, as Consul's (command/snapshot/inspect): the metadata, then
// the count and size of the records by type, sorted by size then name; with -kvdetails the same for the
// KV space grouped by the first -kvdepth segments of the keys under -kvfilter. -format json prints
// Consul's OutputFormat. Local only: no agent is contacted.
//
// The pretty layout is exactly Consul's, whoever wrote the file. An archive written by Conclave carries
// its producer in meta.json; that shows only in -format json, as one extra key after Consul's
// ("Producer": {"Name", "Version", "FsmFormat"}), absent for Consul's archives. JSON readers ignore an
// unknown key; a script reading the pretty table by line or column would not ignore an extra line.

import { open } from 'node:fs/promises';
import type { FlagSpec } from '../../config/index.js';
import { lastFlag } from '../../config/index.js';
import { startSubcommand, type SnapshotDeps } from './common.js';
import { kvsKey, readRecords, SnapshotReadError } from './files.js';
import { formatInspectJson, formatInspectPretty, sortStats, type InspectOutput, type TypeStats } from './format.js';
import { errorText } from './http-client.js';

export const inspectFlags: readonly FlagSpec[] = [
  { name: 'kvdetails', kind: 'bool', usage: "Provides a detailed KV space usage breakdown for any KV data that's been stored.", defaultText: 'false' },
  { name: 'kvdepth', kind: 'int', valueName: 'int', usage: 'Can only be used with -kvdetails. The key prefix depth used to breakdown KV store data.', defaultText: '2' },
  { name: 'kvfilter', kind: 'string', valueName: 'string', usage: 'Can only be used with -kvdetails. Limits KV key breakdown using this prefix filter.' },
  { name: 'format', kind: 'string', valueName: 'string', usage: 'Output format {pretty|json}', defaultText: 'pretty' },
];

const kvsType = 2;

export async function runInspect(args: readonly string[], deps: SnapshotDeps): Promise<number> {
  const start = startSubcommand(inspectFlags, args, 'inspect', deps);
  if (!start.ok) return start.code;
  const { flags, file, fail } = start;
  const kvDetails = lastFlag(flags, 'kvdetails') === true;
  const kvDepthFlag = lastFlag(flags, 'kvdepth');
  const kvDepth = typeof kvDepthFlag === 'number' ? kvDepthFlag : 2;
  const kvFilterFlag = lastFlag(flags, 'kvfilter');
  const kvFilter = typeof kvFilterFlag === 'string' ? kvFilterFlag : '';
  const format = String(lastFlag(flags, 'format') ?? 'pretty');
  // Consul checks the format after reading the whole file; the message is the same, found before the work.
  if (format !== 'pretty' && format !== 'json') return fail(`Error outputting enhanced snapshot data: Unknown format: ${format}`);
  if (kvDepth < 1) return fail(`Invalid -kvdepth ${kvDepth}: must be 1 or more`);
  if (!kvDetails && (kvDepthFlag !== undefined || kvFilterFlag !== undefined)) {
    // Consul ignores them silently; say so, on stderr, and go on as Consul does.
    deps.stderr.write('Warning: -kvdepth and -kvfilter apply only with -kvdetails; ignored\n');
  }

  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    return fail(`Error opening snapshot file: ${errorText(err)}`);
  }
  const stats = new Map<number, { Name: string; Sum: number; Count: number }>();
  const kv = new Map<string, { Name: string; Sum: number; Count: number }>();
  let total = 0;
  let totalKv = 0;
  let meta;
  try {
    meta = await readRecords(handle, file, (record) => {
      const s = stats.get(record.type) ?? { Name: record.name, Sum: 0, Count: 0 };
      s.Sum += record.size;
      s.Count += 1;
      stats.set(record.type, s);
      total += record.size;
      if (!kvDetails || record.type !== kvsType) return;
      const key = kvsKey(record.body);
      if (key === undefined || (kvFilter !== '' && !key.startsWith(kvFilter))) return;
      const prefix = key.split('/').slice(0, kvDepth).join('/');
      const k = kv.get(prefix) ?? { Name: prefix, Sum: 0, Count: 0 };
      k.Sum += record.size;
      k.Count += 1;
      kv.set(prefix, k);
      totalKv += record.size;
    });
  } catch (err) {
    if (err instanceof SnapshotReadError) return fail(err.message);
    throw err;
  } finally {
    await handle.close().catch(() => undefined);
  }

  const info: InspectOutput = {
    Meta: { ID: meta.ID, Size: meta.Size, Index: meta.Index, Term: meta.Term, Version: meta.Version },
    Stats: sortStats(stats.values() as Iterable<TypeStats>),
    StatsKV: kv.size > 0 ? sortStats(kv.values() as Iterable<TypeStats>) : null,
    TotalSize: total,
    TotalSizeKV: totalKv,
  };
  if (format === 'pretty') {
    deps.stdout.write(`${formatInspectPretty(info)}\n`);
    return 0;
  }
  const producer = meta.Producer === undefined ? {} : { Producer: { Name: meta.Producer, Version: meta.ProducerVersion ?? null, FsmFormat: meta.FsmFormat ?? null } };
  deps.stdout.write(`${formatInspectJson(info, producer)}\n`);
  return 0;
}
