// Conclave's version, package.json's, read once: printed by `conclave version`, the agent's start
// banner, and told to other servers and HTTP clients. In src/base so that every layer may ask for it.
// From src/base/ (tsx) and from dist/base/ (compiled) package.json is two directories up.

import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function conclaveVersion(): string {
  if (cached === undefined) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  }
  return cached;
}
