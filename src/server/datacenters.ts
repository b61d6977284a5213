// Other datacenters, for ?dc. Consul learns them through the WAN gossip pool; Conclave servers
// list some servers of the other datacenters in retry_join_wan (their server RPC addresses) and ask
// each who it is (the hello operator call, which names its datacenter). A request for another
// datacenter is forwarded to one of its servers over gRPC, which handles it as its own.

import type { Logger } from 'pino';
import { ServerError } from './api.js';
import type { Hello } from './protocol.js';

/** How often the WAN servers are asked again (a datacenter may appear or move). */
const rediscoverMs = 15_000;

export class Datacenters {
  /** Datacenter name -> server addresses that answered with it, the last to answer first. */
  private readonly routes = new Map<string, string[]>();
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly own: string,
    private readonly addresses: readonly string[],
    private readonly hello: (address: string) => Promise<Hello>,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.addresses.length === 0) return;
    void this.discover();
    this.timer = setInterval(() => void this.discover(), rediscoverMs);
    this.timer.unref?.();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  /** Every datacenter known, this one included, sorted (GET /v1/catalog/datacenters). */
  names(): string[] {
    return [...new Set([this.own, ...this.routes.keys()])].sort();
  }

  /** A server of `dc` to forward to; Consul's "No path to datacenter" when there is none. */
  async route(dc: string): Promise<string> {
    let known = this.routes.get(dc);
    if ((known === undefined || known.length === 0) && this.addresses.length > 0 && !this.closed) {
      await this.discover(); // not known yet (just started) or moved: ask once more, bounded by hello's deadline
      known = this.routes.get(dc);
    }
    const address = known?.[0];
    if (address === undefined) throw new ServerError('no-path-to-dc', 'No path to datacenter');
    return address;
  }

  /** A forwarded call to `address` failed in transport: try the datacenter's other servers first next time. */
  demote(dc: string, address: string): void {
    const list = this.routes.get(dc);
    if (list === undefined) return;
    const i = list.indexOf(address);
    if (i >= 0) list.push(...list.splice(i, 1));
  }

  private discover(): Promise<void> {
    this.round ??= (async () => {
      await Promise.all(
        this.addresses.map(async (address) => {
          try {
            const h = await this.hello(address);
            if (h.datacenter === this.own) {
              this.logger.warn({ event: 'wan-same-dc', address }, `retry_join_wan lists ${address}, a server of this datacenter (${this.own}); ignored`);
              return;
            }
            for (const [dc, list] of this.routes) if (dc !== h.datacenter) this.routes.set(dc, list.filter((a) => a !== address));
            const list = this.routes.get(h.datacenter) ?? [];
            if (!list.includes(address)) {
              list.push(address);
              this.logger.info({ event: 'wan-server', address, datacenter: h.datacenter }, `found a server of datacenter ${h.datacenter}`);
            }
            this.routes.set(h.datacenter, list);
          } catch (e) {
            this.logger.debug({ event: 'wan-hello-failed', address, err: (e as Error).message }, 'a WAN server did not answer');
          }
        }),
      );
    })().finally(() => (this.round = undefined));
    return this.round;
  }
}
