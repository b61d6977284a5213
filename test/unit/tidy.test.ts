// Mechanical rules, enforced by a test so reviews can spend their attention on design. Each ban
// names what to use instead. This file exempts itself.
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

interface Ban {
  readonly pattern: RegExp;
  readonly instead: string;
}

function violations(dir: string, bans: readonly Ban[]): string[] {
  const self = fileURLToPath(import.meta.url);
  const found: string[] = [];
  for (const f of files(join(root, dir))) {
    if (f === self) continue;
    readFileSync(f, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        for (const b of bans) if (b.pattern.test(line)) found.push(`${relative(root, f)}:${i + 1}: ${line.trim()}  (use ${b.instead})`);
      });
  }
  return found;
}

test('the consensus core does no I/O and reads no clock or random source', (t) => {
  const found = violations('src/raft', [
    { pattern: /Date\.now\(|new Date\(|performance\.now\(/, instead: 'tick() for time' },
    { pattern: /Math\.random\(/, instead: 'the injected RandomSource' },
    { pattern: /setTimeout|setInterval|setImmediate|process\.nextTick/, instead: 'tick() driven by the runtime' },
    { pattern: /from 'node:|require\(|from 'fs'|from 'net'/, instead: 'nothing: the runtime does I/O' },
    { pattern: /\basync\b|\bawait\b|Promise</, instead: 'synchronous inputs and a Ready batch' },
  ]);
  t.deepEqual(found, []);
});

test('no focused, skipped or placeholder tests, and no FIXME', (t) => {
  const tests = violations('test', [
    { pattern: /\btest\.(only|skip|todo|failing)\(/, instead: 'a real test, or none' },
  ]);
  const fixmes = violations('src', [{ pattern: /FIXME/, instead: 'an issue' }]);
  t.deepEqual([...tests, ...fixmes], []);
});
