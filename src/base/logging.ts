// Log fields bound once. pino writes every binding of a child logger and every field of a log call
// literally, so a key the parent already carries (the CLI's `node`, the agent's `component`) would
// appear twice in one JSON line. These helpers add only what is not bound yet. Structural types keep
// this folder free of the logging library.

type Fields = Record<string, unknown>;

interface Bound<L> {
  bindings(): Fields;
  child(bindings: Fields): L;
}

/** `fields` less the keys `logger` already binds (those keep the logger's value). */
export function unbound(logger: { bindings(): Fields }, fields: Fields): Fields {
  const have = logger.bindings();
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) if (!Object.hasOwn(have, k)) out[k] = v;
  return out;
}

/** A child of `parent` binding those of `fields` it does not bind already; `parent` itself when none. */
export function childWith<L extends Bound<L>>(parent: L, fields: Fields): L {
  const add = unbound(parent, fields);
  return Object.keys(add).length === 0 ? parent : parent.child(add);
}
