// /v1/snapshot (Consul's agent/snapshot_endpoint.go): GET saves, PUT restores. Consul's handler reads
// only ?dc, ?stale and the token (no ?consistent, ?index or ?wait), and so does this one.
//
// Where we differ from Consul:
// - A save that fails after the headers were sent aborts the connection (no final chunk), so no
//   client can take a cut-short archive for a whole one; Consul ends a truncated 200 normally.
// - A bad archive, ?stale on a restore, and an unknown ?dc answer 400 (Consul: 500), with Consul's
//   texts, since retrying the same request cannot help.

import { textReply, type Reply, type RequestContext } from './reply.js';

export async function handleSnapshot(ctx: RequestContext): Promise<Reply> {
  const options = { stale: ctx.query.has('stale'), dc: ctx.query.get('dc'), token: tokenOf(ctx), signal: ctx.signal };
  if (ctx.method === 'GET') {
    const r = await ctx.api.snapshotSave(options);
    return {
      status: 200,
      headers: {
        'Content-Type': 'application/x-gzip',
        'X-Consul-Index': String(Math.max(1, r.meta.index)),
        'X-Consul-LastContact': String(Math.round(r.meta.lastContactMs)),
        'X-Consul-KnownLeader': String(r.meta.knownLeader),
      },
      body: '',
      stream: r.body,
    };
  }
  // Refused before a byte of the body is read (the connection then closes; see server.ts).
  if (options.stale) return textReply(400, 'stale not allowed for restore');
  await ctx.api.snapshotRestore(ctx.bodyStream(), options);
  return { status: 200, headers: {}, body: '' };
}

/** Consul's parseToken order: ?token, then X-Consul-Token, then Authorization: Bearer. */
export function tokenOf(ctx: RequestContext): string {
  if (ctx.query.has('token')) return ctx.query.get('token');
  const header = ctx.headers['x-consul-token'];
  if (typeof header === 'string' && header !== '') return header;
  const auth = ctx.headers['authorization'];
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m !== null) return m[1] as string;
  }
  return '';
}
