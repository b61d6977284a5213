// In-process servers for the runtime's tests: real RaftNodes with real LevelDB stores on temp
// directories and real gRPC transports on loopback; only the process boundary is missing (the
// process-level tests are in test/cluster).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { encodeCommand } from '../../src/fsm/index.js';
import { RaftNode, type RaftNodeOptions } from '../../src/node/index.js';
import type { Configuration, Message } from '../../src/raft/index.js';
import { PeerTransport } from '../../src/transport/index.js';

/** The real transport, with a switch a test may set to lose chosen outgoing messages (a network fault). */
export class LossyTransport extends PeerTransport {
  loseIf: ((m: Message) => boolean) | undefined;

  override send(m: Message): void {
    if (this.loseIf?.(m) === true) return;
    super.send(m);
  }
}

export interface TestServer {
  readonly id: string;
  readonly dataDir: string;
  address: string;
  port: number;
  transport: LossyTransport;
  node: RaftNode;
}

export const fastTiming = {
  tickMs: 20,
  electionTimeoutTicks: 15,
  heartbeatIntervalTicks: 2,
} as const;

export async function tempDir(t: { teardown(f: () => Promise<void> | void): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-node-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function startServer(
  id: string,
  dataDir: string,
  port = 0,
  overrides: Partial<RaftNodeOptions> = {},
  /** Collects the `event` field of every log line, to prove a path was taken. */
  events?: string[],
): Promise<TestServer> {
  const logger =
    events === undefined
      ? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }).child({ node: id })
      : pino({ level: 'info' }, { write: (line: string) => void events.push(String(JSON.parse(line).event)) });
  const transport = new LossyTransport({ id, logger });
  const bound = await transport.listen('127.0.0.1', port);
  const address = `127.0.0.1:${bound}`;
  const node = await RaftNode.open({
    id,
    address,
    dataDir,
    logger,
    transport,
    ...fastTiming,
    maxMessageBytes: 1 << 20,
    maxInflightMessages: 32,
    snapshotThresholdEntries: 1000,
    trailingEntries: 10,
    snapshotsRetained: 2,
    ...overrides,
  });
  return { id, dataDir, address, port: bound, transport, node };
}

export async function stopServer(s: TestServer): Promise<void> {
  await s.node.close();
  await s.transport.close();
}

export function configurationOf(servers: readonly TestServer[]): Configuration {
  return { servers: servers.map((s) => ({ id: s.id, suffrage: 'voter' as const, address: s.address })) };
}

export const set = (key: string, value: string): Uint8Array =>
  encodeCommand({ type: 'kvs', op: { verb: 'set', key, value: new TextEncoder().encode(value), flags: 0 } });

export async function waitFor<T>(what: string, f: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function leaderOf(servers: readonly TestServer[]): Promise<TestServer> {
  return waitFor('a leader', () => {
    const leaders = servers.filter((s) => s.node.status().role === 'leader');
    return leaders.length === 1 ? leaders[0] : undefined;
  });
}

export async function valueOn(s: TestServer, key: string): Promise<string | undefined> {
  const r = await s.node.fsm.get(key);
  return r.entry === undefined ? undefined : new TextDecoder().decode(r.entry.Value);
}
