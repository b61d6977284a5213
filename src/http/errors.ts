// Errors of the HTTP layer.
//
// - `HttpError`: an expected answer that is not a success (bad input, a refused operation, a server
//   condition). Handlers throw it; the server turns it into a plain-text response with its status.
//   Nothing has been changed when a handler throws one for bad input.
// - `InvariantError` through `assert()` (both from src/base): a bug. Never caught on purpose; the request
//   gets a 500 and the log gets the stack, but the process keeps serving other requests (a broken HTTP
//   answer must not take a Raft member down with it).

import type { ServerErrorCode } from '../server/index.js';

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    /** HTTP status code. */
    readonly status: number,
    /** The exact response body (Consul's text where it has one). */
    readonly body: string,
    readonly options: {
      /** Extra response headers (e.g. Allow on a 405). */
      readonly headers?: Readonly<Record<string, string>>;
      readonly cause?: unknown;
    } = {},
  ) {
    super(body, options.cause === undefined ? undefined : { cause: options.cause });
  }
}

/**
 * The one table from a server error's code to its HTTP answer: the status, and Consul's exact body
 * where Consul has a fixed text (otherwise the error's own message is the body). Every ServerError
 * reaching the HTTP layer, from this server or relayed from the leader, is answered from here.
 */
export const serverErrorReplies: Readonly<Record<ServerErrorCode, { readonly status: number; readonly body?: string }>> = {
  'no-leader': { status: 500, body: 'No cluster leader' },
  'unknown-outcome': { status: 500 },
  'aborted-by-restore': { status: 500 },
  'bad-request': { status: 400 },
  'not-found': { status: 404 },
  unavailable: { status: 503 },
  'permission-denied': { status: 403 },
  'acl-not-found': { status: 403, body: 'ACL not found' },
  // Consul answers 500; a datacenter that does not exist is the request's fault (src/http/README.md).
  'no-path-to-dc': { status: 400, body: 'No path to datacenter' },
  internal: { status: 500 },
};

/** A 400 with a message a person can act on. */
export function badRequest(body: string): HttpError {
  return new HttpError(400, body);
}
