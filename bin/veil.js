#!/usr/bin/env node
// Thin launcher: the CLI itself is TypeScript compiled by `tsc` into dist/.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('veil: dist/cli/main.js not found: run `npm run build` first\n');
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
