// Programmer errors surface as assertions: one fact per call, crash when one fails. Never catch
// InvariantError: a core whose invariants broke must stop, not limp on.

export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

export function assert(ok: unknown, invariant: string): asserts ok {
  if (!ok) throw new InvariantError(invariant);
}

/** Ends every exhaustive switch, so a new union member fails to compile until it is handled. */
export function unreachable(value: never): never {
  throw new InvariantError(`unreachable: ${JSON.stringify(value)}`);
}
