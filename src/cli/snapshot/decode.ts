// `conclave snapshot decode FILE`, as Consul's (command/snapshot/decode): JSON lines on stdout, first
// {"Data":<meta.json>,"Type":"SnapshotHeader"}, then {"Data":<record>,"Type":"<name>"} per record, with
// "Unknown(<n>)" for a type this version does not know. Keys in Go's order for the envelope (Data, Type).
//
// Differences from Consul, both deliberate: Data is the record as stored (Consul decodes some types into
// request structs that do not match what was stored, and prints empty KVS entries for them); and an
// archive is verified in a first pass before anything is printed (two reads of the file, constant
// memory), so no line comes from a file that then fails its hash check. A raw state.bin is read once.

import { open } from 'node:fs/promises';
import { startSubcommand, type SnapshotDeps } from './common.js';
import { isRawStateBin, kvsValueBytes, readRawMeta, readRecords, readVerifiedMeta, SnapshotReadError } from './files.js';
import { goJson } from './format.js';
import { errorText } from './http-client.js';

const kvsType = 2;

export async function runDecode(args: readonly string[], deps: SnapshotDeps): Promise<number> {
  const start = startSubcommand([], args, 'decode', deps);
  if (!start.ok) return start.code;
  const { file, fail } = start;
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    return fail(`Error opening snapshot file: ${errorText(err)}`);
  }
  try {
    const meta = isRawStateBin(file) ? await readRawMeta(file) : await readVerifiedMeta(handle);
    deps.stdout.write(`${goJson({ Data: meta, Type: 'SnapshotHeader' })}\n`);
    await readRecords(handle, file, (record) => {
      let data = record.body;
      if (record.type === kvsType && data !== null && typeof data === 'object' && !(data instanceof Uint8Array)) {
        // Go prints []byte as base64: give the Value its stored bytes, whatever msgpack type held them.
        const value = kvsValueBytes(record);
        if (value !== undefined) data = { ...(data as object), Value: value };
      }
      deps.stdout.write(`${goJson({ Data: data, Type: record.name })}\n`);
    });
    return 0;
  } catch (err) {
    if (err instanceof SnapshotReadError) return fail(err.message);
    throw err;
  } finally {
    await handle.close().catch(() => undefined);
  }
}
