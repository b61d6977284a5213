// The version printed by `conclave version` and the agent's start banner: package.json's, read once.
// From src/cli/ (tsx) and from dist/cli/ (compiled) package.json is two directories up.

import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function conclaveVersion(): string {
  if (cached === undefined) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  }
  return cached;
}
