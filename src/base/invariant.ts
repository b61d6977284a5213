// Programmer errors surface as assertions: one fact per call, crash when one fails. Never catch an
// InvariantError: a layer whose invariants broke must stop, not limp on (the HTTP layer alone turns one
// into a 500 for the request at hand, so a broken answer does not take a Raft member down with it).
//
// There is one InvariantError class for the whole project, so `instanceof InvariantError` holds
// whichever layer threw it.

/** A broken invariant: a bug. Never catch it. */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
  constructor(invariant: string) {
    super(`invariant violated: ${invariant}`);
  }
}

/** Throws an InvariantError unless `ok`. One fact per call, so the message names exactly what broke. */
export function assert(ok: unknown, invariant: string): asserts ok {
  if (!ok) throw new InvariantError(invariant);
}

/** Ends every exhaustive switch, so a new union member fails to compile until it is handled. */
export function unreachable(value: never): never {
  throw new InvariantError(`unreachable: ${JSON.stringify(value)}`);
}
