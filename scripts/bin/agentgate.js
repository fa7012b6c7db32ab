#!/usr/bin/env node
// Entry point of `npx agentgate`: the compiled CLI lives in dist/ (run `npm run build` first). The
// one place that reads process.env; every command gets it as a parameter.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error('agentgate: not built yet; run `npm run build` in the repository first');
  process.exit(2);
}
const { main } = await import(cli.href);
process.exit(await main(process.argv.slice(2), process.env));
