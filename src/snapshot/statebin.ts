// Reading Consul's state.bin record stream, record by record, in bounded memory.
//
//   msgpack {LastIndex}                       header, no type byte
//   <1 type byte> <one msgpack map>           repeated until the end of the stream
//
// (Consul's layout: agent/consul/fsm/snapshot.go writes it, fsm.go's Restore reads it.) The reader
// buffers at most one record (plus one incoming chunk), checks each record's type before reading its
// body, measures the body before decoding it (msgpack-frame.ts), and validates every field. Every error
// names the record (0 = header, records count from 1), its byte offset and, when there is one, the field.
//
// Two record policies:
// - 'restore' (the default): only the tables we model are restorable today (Register 0, KVS 2, Session 3,
//   Tombstone 5, Index 16), and every field is validated. Other Consul record types are refused by name, so a Consul
//   snapshot holding a catalog fails loudly instead of losing it.
// - 'inspect': every type is framed (measured in bounded memory) and decoded generically, so inspect and
//   decode can count and print any Consul archive. Known types too arrive as `kind: 'other'`.
//
// Every item carries `bytes`, the bytes consumed since the previous item (the header's own bytes for the
// header; type byte + body for a record), and `raw`, the msgpack bytes of its body as read.

import { decode, encode } from '@msgpack/msgpack';
import { describeValue, isPlainMap, toUint } from './values.js';
import { StateBinError, type StateBinErrorCode } from './errors.js';
import { snapshotLimits } from './limits.js';
import { measureMsgpack } from './msgpack-frame.js';
import { parseIndexRecord, parseKvsRecord, parseSessionRecord, parseTombstoneRecord, RecordType, type IndexRecord, type Parsed } from './records.js';
import { scanDirEntry } from './record-scan.js';
import { parseRegisterRecord, type RegisterRecord } from './catalog-records.js';
import type { DirEntry, Session, Tombstone } from './types.js';
import { utf8 } from '../base/index.js';

/** Consul's structs.MessageType names (as `consul snapshot inspect` prints them). */
export const consulMessageTypeNames: Readonly<Record<number, string>> = {
  0: 'Register', 1: 'Deregister', 2: 'KVS', 3: 'Session', 4: 'ACL', 5: 'Tombstone',
  6: 'CoordinateBatchUpdate', 7: 'PreparedQuery', 8: 'Txn', 9: 'Autopilot', 10: 'Area',
  11: 'ACLBootstrap', 12: 'Intention', 13: 'ConnectCA', 14: 'ConnectCAProviderState',
  15: 'ConnectCAConfig', 16: 'Index', 17: 'ACLToken', 18: 'ACLTokenDelete', 19: 'ACLPolicy',
  20: 'ACLPolicyDelete', 21: 'ConnectCALeaf', 22: 'ConfigEntry', 23: 'ACLRole', 24: 'ACLRoleDelete',
  25: 'ACLBindingRule', 26: 'ACLBindingRuleDelete', 27: 'ACLAuthMethod', 28: 'ACLAuthMethodDelete',
  29: 'ChunkingState', 30: 'FederationState', 31: 'SystemMetadata', 32: 'ServiceVirtualIP',
  33: 'FreeVirtualIP', 34: 'KindServiceName', 35: 'Peering', 36: 'PeeringDelete',
  37: 'PeeringTerminateByID', 38: 'PeeringTrustBundle', 39: 'PeeringTrustBundleDelete',
  40: 'PeeringSecret', 41: 'RaftLogVerifierCheckpoint', 42: 'Resource', 43: 'UpdateManualVirtualIPRequestType',
};

/** Consul's name of a message type; `Unknown(<n>)` as Consul CE tools print types they do not know. */
export function messageTypeName(type: number): string {
  return consulMessageTypeNames[type] ?? `Unknown(${type})`;
}

/** Consul CE treats types from here up as Enterprise entries. */
const enterpriseTypeMin = 64;

/** Where an item sits in the stream, and what it took. */
interface ItemFrame {
  /** Records count from 1 (the header is record 0). */
  readonly record: number;
  /** Byte offset of the record's type byte (of the header: 0). */
  readonly offset: number;
  /** Bytes consumed since the previous item: the header's own bytes, or type byte + body. */
  readonly bytes: number;
  /** The msgpack bytes of the body exactly as read (without the type byte). */
  readonly raw: Uint8Array;
}

/** What the KV table rows carry besides their parsed fields. */
interface RowFrame extends ItemFrame {
  /** The Key's UTF-8 bytes. */
  readonly keyBytes: Uint8Array;
  /**
   * When `raw` is byte for byte what encodeKvsRecord writes for this row (our own snapshots), the offset
   * in `raw` of the ModifyIndex value, the body's last field; otherwise -1.
   */
  readonly canonicalModifyIndexAt: number;
}

export type StateBinItem =
  | ({
    readonly kind: 'header';
    readonly lastIndex: number;
    /**
     * Ours, written only by rewriteForRestore for a user restore (never into an archive): every row index
     * below it is to be raised to it as the state is restored (see README.md, "Restore index").
     */
    readonly restoreIndex: number | undefined;
  } & ItemFrame)
  | ({ readonly kind: 'kvs'; readonly entry: DirEntry } & RowFrame)
  | ({ readonly kind: 'tombstone'; readonly stone: Tombstone } & RowFrame)
  | ({ readonly kind: 'index'; readonly index: IndexRecord } & ItemFrame)
  | ({ readonly kind: 'session'; readonly session: Session } & ItemFrame)
  /** A catalog registration: a node, and a service or check of it (indexes missing in the record are LastIndex). */
  | ({ readonly kind: 'register'; readonly register: RegisterRecord } & ItemFrame)
  /** Policy 'inspect' only: any record, its body decoded generically (strings as strings, 64-bit integers as bigint). */
  | ({ readonly kind: 'other'; readonly type: number; readonly name: string; readonly body: unknown } & ItemFrame);

/** 'restore': Register, KVS, Session, Tombstone and Index only, fully validated. 'inspect': every type, decoded generically. */
export type RecordPolicy = 'restore' | 'inspect';

export interface ReadStateBinOptions {
  /** When known (the Raft snapshot's Size), the stream must be exactly this long. */
  readonly expectedBytes?: number;
  /** Defaults to snapshotLimits.stateBinRecordMaxBytes. */
  readonly recordMaxBytes?: number;
  /** Defaults to 'restore'. */
  readonly records?: RecordPolicy;
}

export function encodeStateBinHeader(lastIndex: number, restoreIndex?: number): Uint8Array {
  return encode(restoreIndex === undefined ? { LastIndex: lastIndex } : { LastIndex: lastIndex, RestoreIndex: restoreIndex });
}

/**
 * Yields the header, then each record. Throws StateBinError on the first problem; the caller decides
 * what "nothing was restored" means for it.
 */
export async function* readStateBin(source: AsyncIterable<Uint8Array>, options: ReadStateBinOptions = {}): AsyncGenerator<StateBinItem> {
  for await (const batch of readStateBinBatches(source, options)) yield* batch;
}

/**
 * readStateBin's items in arrays: every record already buffered is read before one yield, which saves
 * an await per record on the hot paths (the restore check and the database rebuild). A batch never
 * holds more than the records of the bytes buffered at one time (one incoming chunk plus one record).
 * The items are valid until the next batch is asked for (they are views into the read buffer, which is
 * never overwritten, so they stay valid after too).
 */
export async function* readStateBinBatches(source: AsyncIterable<Uint8Array>, options: ReadStateBinOptions = {}): AsyncGenerator<StateBinItem[]> {
  const recordMaxBytes = options.recordMaxBytes ?? snapshotLimits.stateBinRecordMaxBytes;
  const inspect = (options.records ?? 'restore') === 'inspect';
  const queue = new ByteQueue(source[Symbol.asyncIterator](), options.expectedBytes);
  try {
    if (!(await queue.ensure(1))) {
      throw new StateBinError('STATE_BIN_EMPTY', 0, 0, undefined, 'state.bin is empty: expected a msgpack header {LastIndex}');
    }
    const header = await readValue(queue, queue.position(), 0, 'header', recordMaxBytes, false);
    const parsedHeader = parseStateBinHeader(header.body);
    const lastIndex = parsedHeader.lastIndex;
    let batch: StateBinItem[] = [{ kind: 'header', ...parsedHeader, record: 0, offset: 0, bytes: header.raw.length, raw: header.raw }];

    for (let record = 1; ; record++) {
      if (queue.buffered() === 0) {
        // Hand out what is read before waiting for more bytes.
        if (batch.length > 0) {
          yield batch;
          batch = [];
        }
        if (!(await queue.ensure(1))) break;
      }
      const offset = queue.position();
      const type = queue.take(1)[0] as number;
      const name = inspect ? messageTypeName(type) : checkType(type, record, offset);
      if (!inspect && (type === RecordType.KVS || type === RecordType.Tombstone)) {
        const view = queue.view();
        const scanned = scanDirEntry(view, 0, view.length, recordMaxBytes - 1);
        if (scanned !== undefined) {
          const raw = queue.take(scanned.end);
          const row = { record, offset, bytes: 1 + raw.length, raw, keyBytes: scanned.keyBytes, canonicalModifyIndexAt: scanned.canonicalModifyIndexAt };
          const { entry } = scanned;
          batch.push(type === RecordType.KVS ? { kind: 'kvs', entry, ...row } : { kind: 'tombstone', stone: { Key: entry.Key, Index: entry.ModifyIndex }, ...row });
          continue;
        }
      }
      // The general path may wait for more bytes: hand out the batch first.
      if (batch.length > 0) {
        yield batch;
        batch = [];
      }
      const { body, raw } = await readValue(queue, offset, record, name, recordMaxBytes - 1, inspect);
      const frame: ItemFrame = { record, offset, bytes: 1 + raw.length, raw };
      batch.push(inspect ? { kind: 'other', type, name, body, ...frame } : parseRecord(type, name, body, frame, lastIndex));
    }
    queue.checkExpectedEnd();
  } finally {
    await queue.close();
  }
}

function where(record: number, offset: number, name: string): string {
  return record === 0 ? `state.bin header (byte offset ${offset})` : `state.bin record ${record} (${name}, byte offset ${offset})`;
}

function checkType(type: number, record: number, offset: number): string {
  if (type === RecordType.Register || type === RecordType.KVS || type === RecordType.Session || type === RecordType.Tombstone || type === RecordType.Index) {
    return consulMessageTypeNames[type] as string;
  }
  const at = `state.bin record ${record} at byte offset ${offset}`;
  if (type >= enterpriseTypeMin) {
    throw new StateBinError('STATE_BIN_ENTERPRISE_TYPE', record, offset, undefined,
      `msg type ${type} is a Consul Enterprise log entry. Consul CE cannot restore it, and Conclave cannot restore it yet (${at})`,
      { type });
  }
  const known = consulMessageTypeNames[type];
  if (known === undefined) {
    throw new StateBinError('STATE_BIN_UNKNOWN_TYPE', record, offset, undefined,
      `Unrecognized msg type ${type} (${at}); Conclave cannot restore it`, { type });
  }
  throw new StateBinError('STATE_BIN_UNSUPPORTED_TYPE', record, offset, undefined,
    `${at} has type ${type} (${known}), which this Conclave version cannot restore yet (only Register, KVS, Session, Tombstone and Index records)`,
    { type });
}

/**
 * Reads exactly one msgpack value from the queue and decodes it: strings as raw bytes for the validating
 * parsers, or (`generic`) as strings with 64-bit integers as bigint, for inspect.
 */
async function readValue(
  queue: ByteQueue, offset: number, record: number, name: string, maxBytes: number, generic: boolean,
): Promise<{ body: unknown; raw: Uint8Array }> {
  for (;;) {
    const view = queue.view();
    const frame = measureMsgpack(view, 0, view.length, maxBytes, snapshotLimits.stateBinRecordMaxValues);
    switch (frame.kind) {
      case 'complete': {
        const raw = queue.take(frame.end);
        try {
          return { body: decode(raw, generic ? { useBigInt64: true } : { rawStrings: true, useBigInt64: true }), raw };
        } catch (cause) {
          throw new StateBinError('STATE_BIN_BAD_MSGPACK', record, offset, undefined,
            `${where(record, offset, name)} is not valid msgpack: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
        }
      }
      case 'incomplete':
        if (!(await queue.more())) {
          throw new StateBinError('STATE_BIN_TRUNCATED', record, offset, undefined,
            `${where(record, offset, name)} is cut short: the stream ends ${view.length} bytes into it (the stream is truncated)`);
        }
        break;
      case 'too-large':
        throw new StateBinError('STATE_BIN_RECORD_TOO_LARGE', record, offset, undefined,
          `${where(record, offset, name)} is at least ${frame.atLeastBytes} bytes, above the limit of ${maxBytes}`);
      case 'too-many-values':
        throw new StateBinError('STATE_BIN_RECORD_TOO_LARGE', record, offset, undefined,
          `${where(record, offset, name)} holds more than ${frame.maxValues} msgpack values (list items, map fields), above the limit`);
      case 'invalid':
        throw new StateBinError('STATE_BIN_BAD_MSGPACK', record, offset, undefined,
          `${where(record, offset, name)} is not valid msgpack: ${frame.reason}`);
    }
  }
}

/** Checks a decoded header: {LastIndex} and, from rewriteForRestore only, RestoreIndex (at most LastIndex). */
export function parseStateBinHeader(body: unknown): { lastIndex: number; restoreIndex: number | undefined } {
  if (!isPlainMap(body)) {
    throw new StateBinError('STATE_BIN_BAD_FIELD', 0, 0, undefined,
      `state.bin header must be a msgpack map {LastIndex}, got ${describeValue(body)}`);
  }
  if (!Object.prototype.hasOwnProperty.call(body, 'LastIndex')) {
    throw new StateBinError('STATE_BIN_MISSING_FIELD', 0, 0, 'LastIndex', 'state.bin header: field "LastIndex" is missing');
  }
  const lastIndex = toUint(body['LastIndex']);
  if (lastIndex === undefined) {
    throw new StateBinError('STATE_BIN_BAD_FIELD', 0, 0, 'LastIndex',
      `state.bin header: field "LastIndex" must be an integer in 0..2^53-1, got ${describeValue(body['LastIndex'])}`);
  }
  if (!Object.prototype.hasOwnProperty.call(body, 'RestoreIndex')) return { lastIndex, restoreIndex: undefined };
  const restoreIndex = toUint(body['RestoreIndex']);
  if (restoreIndex === undefined || restoreIndex > lastIndex) {
    throw new StateBinError('STATE_BIN_BAD_FIELD', 0, 0, 'RestoreIndex',
      `state.bin header: field "RestoreIndex" must be an integer in 0..LastIndex (${lastIndex}), got ${describeValue(body['RestoreIndex'])}`);
  }
  return { lastIndex, restoreIndex };
}

function parseRecord(type: number, name: string, body: unknown, frame: ItemFrame, lastIndex: number): StateBinItem {
  const { record, offset } = frame;
  switch (type) {
    case RecordType.Register:
      return { kind: 'register', register: accept(parseRegisterRecord(body, lastIndex), record, offset, name), ...frame };
    case RecordType.KVS: {
      const entry = accept(parseKvsRecord(body), record, offset, name);
      return { kind: 'kvs', entry, keyBytes: utf8(entry.Key), canonicalModifyIndexAt: -1, ...frame };
    }
    case RecordType.Tombstone: {
      const stone = accept(parseTombstoneRecord(body), record, offset, name);
      return { kind: 'tombstone', stone, keyBytes: utf8(stone.Key), canonicalModifyIndexAt: -1, ...frame };
    }
    case RecordType.Session:
      return { kind: 'session', session: accept(parseSessionRecord(body), record, offset, name), ...frame };
    default:
      return { kind: 'index', index: accept(parseIndexRecord(body), record, offset, name), ...frame };
  }
}

function accept<T>(parsed: Parsed<T>, record: number, offset: number, name: string): T {
  if (parsed.ok) return parsed.value;
  const code: StateBinErrorCode = parsed.missing ? 'STATE_BIN_MISSING_FIELD' : 'STATE_BIN_BAD_FIELD';
  throw new StateBinError(code, record, offset, parsed.field, `${where(record, offset, name)}: ${parsed.message}`);
}

/**
 * The unread bytes of the stream. Invariant: `buf[start..end)` are the bytes from stream position
 * `base + start` on. The buffer grows by doubling, so a record arriving in many chunks costs linear
 * copying; at most one partial record plus one chunk is held. Bytes handed out by `take` are never
 * overwritten: compaction always moves the unread bytes into a new buffer.
 */
class ByteQueue {
  private buf = new Uint8Array(0);
  private start = 0;
  private end = 0;
  private base = 0;
  private ended = false;

  constructor(
    private readonly source: AsyncIterator<Uint8Array>,
    private readonly expectedBytes: number | undefined,
  ) {}

  position(): number {
    return this.base + this.start;
  }

  view(): Uint8Array {
    return this.buf.subarray(this.start, this.end);
  }

  buffered(): number {
    return this.end - this.start;
  }

  take(n: number): Uint8Array {
    const out = this.buf.subarray(this.start, this.start + n);
    this.start += n;
    return out;
  }

  /** Pulls chunks until `n` bytes are buffered; false if the stream ends first. */
  async ensure(n: number): Promise<boolean> {
    while (this.end - this.start < n) if (!(await this.more())) return false;
    return true;
  }

  /** Pulls one more non-empty chunk; false at the end of the stream. */
  async more(): Promise<boolean> {
    while (!this.ended) {
      const next = await this.source.next();
      if (next.done === true) {
        this.ended = true;
        break;
      }
      const chunk = next.value;
      if (!(chunk instanceof Uint8Array)) {
        throw new TypeError(`state.bin source yielded ${describeValue(chunk)} instead of bytes`);
      }
      if (chunk.length === 0) continue;
      this.append(chunk);
      if (this.expectedBytes !== undefined && this.base + this.end > this.expectedBytes) {
        throw new StateBinError('STATE_BIN_SIZE_MISMATCH', -1, this.expectedBytes, undefined,
          `state.bin is longer than the ${this.expectedBytes} bytes its snapshot metadata announces`);
      }
      return true;
    }
    return false;
  }

  private append(chunk: Uint8Array): void {
    if (this.end + chunk.length > this.buf.length) {
      const unread = this.end - this.start;
      const capacity = Math.max(2 * (unread + chunk.length), snapshotLimits.stateBinBufferMinBytes);
      const grown = new Uint8Array(capacity);
      grown.set(this.buf.subarray(this.start, this.end), 0);
      this.base += this.start;
      this.start = 0;
      this.end = unread;
      this.buf = grown;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  checkExpectedEnd(): void {
    const total = this.base + this.end;
    if (this.expectedBytes !== undefined && total !== this.expectedBytes) {
      throw new StateBinError('STATE_BIN_SIZE_MISMATCH', -1, total, undefined,
        `state.bin ends after ${total} bytes but its snapshot metadata announces ${this.expectedBytes} (the stream is truncated)`);
    }
  }

  async close(): Promise<void> {
    if (!this.ended && this.source.return !== undefined) await this.source.return();
  }
}
