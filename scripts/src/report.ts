// `npx agentgate report --from FILE`: renders a JSON report that `loadtest`, `soak` or `bench` wrote
// (--json) as the HTML page their --html writes, or as one standalone SVG of its plots (what
// BENCHMARKS.md shows: benchmarks/*.svg beside the JSON each is made from).
import { readFileSync, writeFileSync } from 'node:fs';
import { type OptionTable, parse, UsageError } from '@agentgate/gateway/options';
import { detectKind, REPORT_KINDS, type ReportKind, renderHtml, renderSvg } from './report/render.js';

export const REPORT_OPTIONS = {
  from: {
    flag: '--from',
    kind: 'string',
    arg: 'FILE',
    required: true,
    help: 'a JSON report written by loadtest, soak or bench (--json)',
  },
  html: { flag: '--html', kind: 'out-file', help: 'write the self-contained HTML page here' },
  svg: { flag: '--svg', kind: 'out-file', help: 'write the plots as one standalone SVG here' },
  kind: {
    flag: '--kind',
    kind: 'choice',
    choices: REPORT_KINDS,
    defaultHelp: 'from the shape of the JSON',
    help: 'which command wrote the report',
  },
} as const satisfies OptionTable;

function readReport(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read --from ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** `agentgate report ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const o = parse(REPORT_OPTIONS, argv, env);
  if (!o.html && !o.svg) throw new UsageError('give --html FILE or --svg FILE (or both)');
  const report = readReport(o.from);
  const kind = (o.kind as ReportKind | undefined) ?? detectKind(report);
  if (!kind) {
    throw new UsageError(`${o.from} is not a report of loadtest, soak or bench (give --kind to say which it is)`);
  }
  if (o.html) writeFileSync(o.html, renderHtml(kind, report));
  if (o.svg) writeFileSync(o.svg, renderSvg(kind, report));
  return 0;
}
