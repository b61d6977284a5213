#!/usr/bin/env node
// The `conclave` command (package.json "bin"). Runs the compiled CLI, dist/cli/main.js, when it
// exists (`npm ci` builds it through the package's `prepare` script, `npm run build` rebuilds it);
// otherwise runs the TypeScript source, src/cli/main.ts, through tsx in this same process, which is
// what a checkout without a build has. When a source file is newer than the build, it says so on
// stderr (and still runs the build): rebuild after editing src/.
//
// Node resolves this file's symlinks (node_modules/.bin/conclave, npx's link to the package), so the
// paths below are relative to the real package directory.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
const source = new URL('../src/cli/main.ts', import.meta.url);
const sourceDir = new URL('../src/', import.meta.url);

/** The newest modification time of a .ts file under `dir`, in ms (0 when there is none). */
function newestSourceMs(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

if (existsSync(compiled)) {
  if (existsSync(sourceDir) && newestSourceMs(fileURLToPath(sourceDir).replace(/\/$/, '')) > statSync(compiled).mtimeMs) {
    process.stderr.write('==> conclave: src/ has changes newer than dist/; running the older build (run `npm run build` to update it)\n');
  }
  await import(compiled.href);
} else if (existsSync(source)) {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write('==> conclave: dist/cli/main.js is missing and tsx is not installed to run the source; run `npm run build` (or `npm ci`) first\n');
    process.exit(1);
  }
  register();
  await import(source.href);
} else {
  process.stderr.write('==> conclave: neither dist/cli/main.js nor src/cli/main.ts was found next to this launcher; reinstall the package\n');
  process.exit(1);
}
