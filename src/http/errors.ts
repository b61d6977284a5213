// Errors of the HTTP layer.
//
// - `HttpError`: an expected answer that is not a success (bad input, a refused operation, a server
//   condition). Handlers throw it; the server turns it into a plain-text response with its status.
//   Nothing has been changed when a handler throws one for bad input.
// - `InvariantError` through `assert()` (both from src/base): a bug. Never caught on purpose; the request
//   gets a 500 and the log gets the stack, but the process keeps serving other requests (a broken HTTP
//   answer must not take a Raft member down with it).

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

/** A 400 with a message a person can act on. */
export function badRequest(body: string): HttpError {
  return new HttpError(400, body);
}
