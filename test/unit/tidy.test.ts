// Mechanical rules, enforced by a test so reviews can spend their attention on design. Each ban
// names what to use instead. This file exempts itself.
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

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

// The folders of src/, lowest layer first. A folder may import only from folders in lower layers, never
// from one in its own layer or above; so the arrows all run one way and there are no cycles between
// folders. A new folder fails this test until it is given its place here.
const layers: readonly (readonly string[])[] = [
  ['base'], // what every folder needs: assert and InvariantError, units, exists/fsyncDir, sleep, the version
  ['raft', 'config'], // the pure consensus core; the agent's configuration (keys, flags, files)
  ['snapshot'], // Consul's snapshot formats: the state.bin codec and the archive
  ['storage', 'fsm', 'transport'], // what the runtime drives: log and snapshot store, state machine, gRPC
  ['node'], // the runtime driving a core
  ['server'], // one server and its API: forwarding, consistency modes, membership
  ['http'], // Consul's HTTP API over the server's API
  ['agent'], // the composition root: wires every layer into one process
  ['cli'], // the `conclave` command
];

interface SrcImport {
  readonly where: string;
  readonly from: string;
  readonly to: string;
  /** The imported file, relative to src/ with .ts for .js. */
  readonly target: string;
}

/** Every relative import, export-from and dynamic import() of every file in src/, found by TypeScript's parser. */
function srcImports(): SrcImport[] {
  const src = join(root, 'src');
  const out: SrcImport[] = [];
  for (const f of files(src)) {
    const info = ts.preProcessFile(readFileSync(f, 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue; // a package or node: built-in
      const target = relative(src, resolve(dirname(f), ref.fileName)).replace(/\.js$/, '.ts');
      out.push({
        where: `${relative(root, f)}: '${ref.fileName}'`,
        from: relative(src, f).split(sep)[0]!,
        to: target.split(sep)[0]!,
        target: target.split(sep).join('/'),
      });
    }
  }
  return out;
}

function layerOf(folder: string): number {
  return layers.findIndex((l) => l.includes(folder));
}

test('every folder of src/ has a layer', (t) => {
  const folders = readdirSync(join(root, 'src')).filter((n) => statSync(join(root, 'src', n)).isDirectory());
  t.deepEqual(folders.filter((f) => layerOf(f) === -1), [], 'add the folder to `layers` in this test');
  t.deepEqual(readdirSync(join(root, 'src')).filter((n) => n.endsWith('.ts')), [], 'files live in a folder of src/');
});

test('a folder is entered through its index.ts only', (t) => {
  const found = srcImports()
    .filter((i) => i.from !== i.to && i.target !== `${i.to}/index.ts`)
    .map((i) => `${i.where}  (import ../${i.to}/index.js instead, exporting what is needed there)`);
  t.deepEqual(found, []);
});

test('imports run down the layers only', (t) => {
  const found = srcImports()
    .filter((i) => i.from !== i.to && layerOf(i.to) >= layerOf(i.from))
    .map((i) => `${i.where}  (${i.from} is in layer ${layerOf(i.from)}, ${i.to} in layer ${layerOf(i.to)}: ` +
      'move what both need down a layer, or the wiring up into src/agent)');
  t.deepEqual(found, []);
});

test('the helpers of src/base are defined there only', (t) => {
  const found = violations('src', [
    {
      pattern: /class InvariantError\b|function (assert|unreachable|exists|sleep)\(|const (KiB|MiB|GiB)\b/,
      instead: 'the one in src/base',
    },
  ]).filter((v) => !v.startsWith('src/base/'));
  t.deepEqual(found, []);
});
