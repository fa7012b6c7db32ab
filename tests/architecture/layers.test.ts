// The layers of STYLE.md, checked on the source: every import (type-only and dynamic ones too) goes
// to the importer's own layer or a lower one, no two files or folders import each other (directly
// or around a loop), and the packages depend one way: shared ← gateway ← scripts.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

// Bottom to top. `dir/**` is every file below dir; any other entry is one file. Every entry names
// something that exists (checked below), so the table cannot drift from the tree.
const LAYERS: readonly { layer: number; name: string; paths: readonly string[] }[] = [
  {
    layer: 1,
    name: 'protocol, ops, embedded PostgreSQL, domain types',
    paths: ['shared/src/**', 'gateway/src/ops/**', 'gateway/src/embedded/**', 'gateway/src/domain.ts'],
  },
  {
    layer: 2,
    name: 'store, options, config',
    paths: ['gateway/src/store/**', 'gateway/src/config.ts', 'gateway/src/options/**'],
  },
  { layer: 3, name: 'session, authz', paths: ['gateway/src/session/**', 'gateway/src/authz/**'] },
  { layer: 4, name: 'handlers', paths: ['gateway/src/handlers/**'] },
  { layer: 5, name: 'rpc', paths: ['gateway/src/rpc/**'] },
  { layer: 6, name: 'http', paths: ['gateway/src/http/**'] },
  { layer: 7, name: 'hub', paths: ['gateway/src/hub/**'] },
  { layer: 8, name: 'one gateway in this process', paths: ['gateway/src/instance/**'] },
  { layer: 9, name: 'workers', paths: ['gateway/src/cluster/**'] },
  { layer: 10, name: 'serve', paths: ['gateway/src/serve.ts'] },
  { layer: 11, name: 'CLI, scripts', paths: ['scripts/src/**', 'scripts/bin/**'] },
];

/** Each package may import itself and the ones before it. */
const PACKAGES = ['shared', 'gateway', 'scripts'] as const;

/** Where the sources are: TypeScript under src/, the bins as plain JavaScript. */
const SOURCE_DIRS: readonly { dir: string; ext: string }[] = [
  { dir: 'shared/src', ext: '.ts' },
  { dir: 'gateway/src', ext: '.ts' },
  { dir: 'scripts/src', ext: '.ts' },
  { dir: 'scripts/bin', ext: '.js' },
];

const REPO = fileURLToPath(new URL('../..', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Reading imports

interface Specifier {
  /** As written; a template literal keeps its `${…}` holes. */
  text: string;
  /** 1-based line of the import. */
  line: number;
}

/**
 * Every import / export-from / side-effect import / dynamic import() of `source`. Whole-line
 * comments are blanked first (not block comments by `/*`: a glob in a string would start one).
 */
function importSpecifiers(source: string): Specifier[] {
  const code = source
    .split('\n')
    .map((l) => (/^\s*(\/\/|\/\*|\*)/.test(l) ? '' : l))
    .join('\n');
  const lineAt = (i: number) => code.slice(0, i).split('\n').length;
  const out: Specifier[] = [];
  const patterns = [
    // import x from '…', import type { a } from '…', export * from '…', export { a } from '…'
    /^[ \t]*(?:import|export)\s+(?:type\s+)?[\w*{}\s,$]+?\s*from\s*(['"])([^'"\n]+)\1/gm,
    // import '…' (side effects only)
    /^[ \t]*import\s*(['"])([^'"\n]+)\1/gm,
    // import('…'), import(`…${x}…`), typeof import('…')
    /\bimport\s*\(\s*(['"`])([^'"`\n]+)\1/g,
  ];
  for (const re of patterns) {
    for (const m of code.matchAll(re)) out.push({ text: m[2]!, line: lineAt(m.index!) });
  }
  return out.sort((a, b) => a.line - b.line);
}

// ---------------------------------------------------------------------------------------------
// Resolving them to files

/** A template literal's `${…}` hole, kept through resolution and matched as one path segment. */
const HOLE = '\u0000';

interface WorkspacePackage {
  dir: string;
  exports: Record<string, string>;
}

/** `@agentgate/*` package name → its folder and exports map (subpath → the `default` target). */
function workspacePackages(): Map<string, WorkspacePackage> {
  const root = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { workspaces: string[] };
  const out = new Map<string, WorkspacePackage>();
  for (const dir of root.workspaces) {
    const pkg = JSON.parse(readFileSync(path.join(REPO, dir, 'package.json'), 'utf8')) as {
      name: string;
      exports?: Record<string, string | { default?: string }>;
    };
    const exports: Record<string, string> = {};
    for (const [sub, target] of Object.entries(pkg.exports ?? {})) {
      const t = typeof target === 'string' ? target : target.default;
      if (t) exports[sub] = t;
    }
    out.set(pkg.name, { dir, exports });
  }
  return out;
}

/** The source file the exports map sends `sub` ('.' or './x/y') to: dist/*.js is built from src/*.ts. */
function exportTarget(pkg: WorkspacePackage, sub: string): string | undefined {
  for (const [key, target] of Object.entries(pkg.exports)) {
    let mapped: string | undefined;
    if (key === sub) mapped = target;
    else if (key.includes('*')) {
      const [pre, post] = key.split('*') as [string, string];
      if (sub.startsWith(pre) && sub.endsWith(post) && sub.length >= pre.length + post.length) {
        mapped = target.replace('*', sub.slice(pre.length, sub.length - post.length));
      }
    }
    if (mapped) return path.posix.join(pkg.dir, mapped.replace(/^\.\/dist\//, './src/').replace(/\.js$/, '.ts'));
  }
  return undefined;
}

/**
 * The files `spec` (imported from `from`) can load: one file, every file a template matches, none
 * for a package outside the repo (undefined when it should resolve and does not).
 */
function resolveSpecifier(
  spec: string,
  from: string,
  files: ReadonlySet<string>,
  packages: Map<string, WorkspacePackage>,
): string[] | undefined {
  const s = spec.replace(/\$\{[^}]*\}/g, HOLE);
  let candidate: string | undefined;
  if (s.startsWith('./') || s.startsWith('../')) {
    candidate = path.posix.join(path.posix.dirname(from), s);
  } else {
    const m = /^(@agentgate\/[^/]+)(\/.*)?$/.exec(s);
    if (!m) return []; // node: builtins and npm packages are outside the layers
    const pkg = packages.get(m[1]!);
    if (!pkg) return undefined;
    candidate = exportTarget(pkg, `.${m[2] ?? ''}`);
    if (!candidate) return undefined;
  }
  const tries = [candidate, candidate.replace(/\.js$/, '.ts'), `${candidate}.ts`, `${candidate}/index.ts`];
  if (candidate.includes(HOLE)) {
    const patterns = tries.map((t) => new RegExp(`^${t.split(HOLE).map(escapeRegExp).join('[^/]+')}$`));
    const hits = [...files].filter((f) => patterns.some((p) => p.test(f)));
    return hits.length > 0 ? hits.sort() : undefined;
  }
  const hit = tries.find((t) => files.has(t));
  return hit ? [hit] : undefined;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------------------------------------
// The graph and the checks (pure, so that the self-test below can feed them a made-up graph)

interface Edge {
  from: string;
  /** The specifier as written. */
  spec: string;
  line: number;
  to: string;
}

interface Graph {
  files: string[];
  edges: Edge[];
  /** Imports that resolve to nothing, as failure messages. */
  unresolved: string[];
}

interface Layer {
  layer: number;
  name: string;
}

function layerOf(file: string): Layer | undefined {
  let best: { layer: Layer; len: number } | undefined;
  for (const row of LAYERS) {
    for (const p of row.paths) {
      const hit = p.endsWith('/**') ? file.startsWith(p.slice(0, -2)) : file === p;
      if (hit && (!best || p.length > best.len)) best = { layer: row, len: p.length };
    }
  }
  return best?.layer;
}

const showLayer = (l: Layer | undefined) => (l ? `layer ${l.layer} (${l.name})` : 'no layer');
const showEdge = (e: Edge) =>
  `${e.from}:${e.line} [${showLayer(layerOf(e.from))}] imports '${e.spec}' → ${e.to} [${showLayer(layerOf(e.to))}]`;

function unlayered(g: Graph): string[] {
  return g.files
    .filter((f) => !layerOf(f))
    .map((f) => `${f} is in no row of the layer table: add it to the layer table (LAYERS in this file)`);
}

function upwardImports(g: Graph): string[] {
  const out: string[] = [];
  for (const e of g.edges) {
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    if (a && b && b.layer > a.layer) {
      out.push(`${showEdge(e)}: layer ${a.layer} may import only layers ≤ ${a.layer}`);
    }
  }
  return out;
}

const packageOf = (file: string) => file.split('/')[0]!;

function packageImports(g: Graph): string[] {
  const rank = (f: string) => PACKAGES.indexOf(packageOf(f) as (typeof PACKAGES)[number]);
  return g.edges
    .filter((e) => rank(e.to) > rank(e.from))
    .map((e) => `${showEdge(e)}: package ${packageOf(e.from)} must not import ${packageOf(e.to)}`);
}

/** The shortest cycle through each node of the directed graph `next`, without repeats, each as [a, b, …] (a → b → … → a). */
function cycles(nodes: string[], next: (n: string) => string[]): string[][] {
  const found = new Map<string, string[]>();
  for (const start of [...nodes].sort()) {
    // Breadth-first from start's successors back to start: the shortest cycle through start.
    const prev = new Map<string, string>();
    const queue: string[] = [];
    for (const n of next(start)) {
      if (!prev.has(n)) {
        prev.set(n, start);
        queue.push(n);
      }
    }
    while (queue.length > 0) {
      const n = queue.shift()!;
      if (n === start) break;
      for (const m of next(n)) {
        if (!prev.has(m)) {
          prev.set(m, n);
          queue.push(m);
        }
      }
    }
    if (!prev.has(start)) continue;
    const loop: string[] = [];
    for (let n = prev.get(start)!; n !== start; n = prev.get(n)!) loop.unshift(n);
    loop.unshift(start);
    const min = loop.indexOf([...loop].sort()[0]!);
    const canonical = [...loop.slice(min), ...loop.slice(0, min)];
    found.set(canonical.join('\0'), canonical);
  }
  return [...found.values()];
}

function fileCycles(g: Graph): string[] {
  const out = new Map<string, Edge[]>();
  for (const e of g.edges) out.set(e.from, [...(out.get(e.from) ?? []), e]);
  const edge = (a: string, b: string) => out.get(a)!.find((e) => e.to === b)!;
  return cycles(g.files, (n) => (out.get(n) ?? []).map((e) => e.to)).map((loop) => {
    const steps = loop.map((a, i) => edge(a, loop[(i + 1) % loop.length]!));
    return `import cycle: ${[...loop, loop[0]].join(' → ')}\n${steps.map((e) => `    ${showEdge(e)}`).join('\n')}`;
  });
}

/** A file's folder; a file directly in a source root is its own unit (the layer table places those one by one). */
function folderOf(file: string): string {
  const dir = path.posix.dirname(file);
  return SOURCE_DIRS.some((d) => d.dir === dir) ? file : dir;
}

function folderCycles(g: Graph): string[] {
  const witnesses = new Map<string, Map<string, Edge[]>>();
  for (const e of g.edges) {
    const a = folderOf(e.from);
    const b = folderOf(e.to);
    if (a === b) continue;
    const m = witnesses.get(a) ?? new Map<string, Edge[]>();
    m.set(b, [...(m.get(b) ?? []), e]);
    witnesses.set(a, m);
  }
  const folders = [...new Set(g.files.map(folderOf))];
  return cycles(folders, (n) => [...(witnesses.get(n)?.keys() ?? [])]).map((loop) => {
    const steps = loop.flatMap((a, i) => witnesses.get(a)!.get(loop[(i + 1) % loop.length]!)!);
    return `folder cycle: ${[...loop, loop[0]].join(' → ')}\n${steps.map((e) => `    ${showEdge(e)}`).join('\n')}`;
  });
}

// ---------------------------------------------------------------------------------------------
// The source tree

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string, ext: string) => {
    const abs = path.join(REPO, dir);
    if (!existsSync(abs)) return;
    for (const name of readdirSync(abs)) {
      const rel = path.posix.join(dir, name);
      if (statSync(path.join(REPO, rel)).isDirectory()) walk(rel, ext);
      else if (name.endsWith(ext) && !name.endsWith('.d.ts')) out.push(rel);
    }
  };
  for (const { dir, ext } of SOURCE_DIRS) walk(dir, ext);
  return out.sort();
}

function sourceGraph(): Graph {
  const files = sourceFiles();
  const known = new Set(files);
  const packages = workspacePackages();
  const edges: Edge[] = [];
  const unresolved: string[] = [];
  for (const from of files) {
    for (const { text, line } of importSpecifiers(readFileSync(path.join(REPO, from), 'utf8'))) {
      const targets = resolveSpecifier(text, from, known, packages);
      if (!targets)
        unresolved.push(
          `${from}:${line} [${showLayer(layerOf(from))}] imports '${text}', which resolves to no source file`,
        );
      for (const to of targets ?? []) if (to !== from) edges.push({ from, spec: text, line, to });
    }
  }
  return { files, edges, unresolved };
}

const report = (failures: string[]) => `${failures.length} failure(s):\n${failures.join('\n')}`;

describe('the layer checker itself', () => {
  const made: Graph = {
    files: [
      'shared/src/protocol/codes.ts',
      'gateway/src/store/pg-store.ts',
      'gateway/src/session/session.ts',
      'gateway/src/authz/authorize.ts',
      'gateway/src/stray.ts',
    ],
    edges: [
      // upward: layer 1 → layer 2, and the shared package importing the gateway
      {
        from: 'shared/src/protocol/codes.ts',
        spec: '@agentgate/gateway/store/pg-store',
        line: 3,
        to: 'gateway/src/store/pg-store.ts',
      },
      // a cycle inside layer 3, across two folders
      {
        from: 'gateway/src/session/session.ts',
        spec: '../authz/authorize.js',
        line: 5,
        to: 'gateway/src/authz/authorize.ts',
      },
      {
        from: 'gateway/src/authz/authorize.ts',
        spec: '../session/session.js',
        line: 7,
        to: 'gateway/src/session/session.ts',
      },
      // downward: fine
      {
        from: 'gateway/src/session/session.ts',
        spec: '../store/pg-store.js',
        line: 6,
        to: 'gateway/src/store/pg-store.ts',
      },
    ],
    unresolved: [],
  };

  test('reports an upward import with the file, the import and both layers', () => {
    assert.deepEqual(upwardImports(made), [
      "shared/src/protocol/codes.ts:3 [layer 1 (protocol, ops, embedded PostgreSQL, domain types)] imports '@agentgate/gateway/store/pg-store' → gateway/src/store/pg-store.ts [layer 2 (store, options, config)]: layer 1 may import only layers ≤ 1",
    ]);
    assert.equal(packageImports(made).length, 1);
    assert.match(packageImports(made)[0]!, /package shared must not import gateway/);
  });

  test('reports a cycle as a path a → b → a, between files and between folders', () => {
    const files = fileCycles(made);
    assert.equal(files.length, 1, report(files));
    assert.match(
      files[0]!,
      /^import cycle: gateway\/src\/authz\/authorize\.ts → gateway\/src\/session\/session\.ts → gateway\/src\/authz\/authorize\.ts\n/,
    );
    assert.match(files[0]!, /imports '\.\.\/session\/session\.js'/);
    const folders = folderCycles(made);
    assert.equal(folders.length, 1, report(folders));
    assert.match(folders[0]!, /^folder cycle: gateway\/src\/authz → gateway\/src\/session → gateway\/src\/authz\n/);
  });

  test('reports a file in no row', () => {
    assert.deepEqual(unlayered(made), [
      'gateway/src/stray.ts is in no row of the layer table: add it to the layer table (LAYERS in this file)',
    ]);
  });

  test('passes a graph that keeps the rules', () => {
    const clean: Graph = { ...made, files: made.files.slice(0, 4), edges: made.edges.slice(2) };
    for (const check of [unlayered, upwardImports, packageImports, fileCycles, folderCycles]) {
      assert.deepEqual(check(clean), [], check.name);
    }
  });

  test('a file directly in src/ is its own unit: serve.ts → http → config.ts is no folder cycle', () => {
    const g: Graph = {
      files: ['gateway/src/serve.ts', 'gateway/src/http/server.ts', 'gateway/src/config.ts'],
      edges: [
        { from: 'gateway/src/serve.ts', spec: './http/server.js', line: 1, to: 'gateway/src/http/server.ts' },
        { from: 'gateway/src/http/server.ts', spec: '../config.js', line: 1, to: 'gateway/src/config.ts' },
      ],
      unresolved: [],
    };
    assert.deepEqual(folderCycles(g), []);
    assert.deepEqual(upwardImports(g), []);
  });

  test('reads every kind of import, type-only and dynamic ones included', () => {
    const source = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      'import {',
      '  c,',
      '  type D,',
      "} from '@agentgate/shared';",
      "export * from './e.js';",
      "export type { F } from './f.js';",
      "import './g.js';",
      '// import { no } from "./commented.js";',
      "const h = await import('./h.js');",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: source text holding a template literal
      'const i = (n: string) => import(`@agentgate/scripts/${n}`);',
      "type J = typeof import('./j.js');",
      "const notAnImport = Array.from('x');",
    ].join('\n');
    assert.deepEqual(
      importSpecifiers(source).map((s) => s.text),
      [
        './a.js',
        '../b.js',
        '@agentgate/shared',
        './e.js',
        './f.js',
        './g.js',
        './h.js',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the specifier as written, hole included
        '@agentgate/scripts/${n}',
        './j.js',
      ],
    );
  });
});

describe('the layers of the source tree (STYLE.md)', () => {
  const graph = sourceGraph();

  test('finds the source files and their imports', () => {
    assert.ok(
      graph.files.length > 10 && graph.edges.length > 10,
      `${graph.files.length} files, ${graph.edges.length} imports`,
    );
  });

  test('every entry of the layer table names a file or folder that exists', () => {
    const missing = LAYERS.flatMap((l) => l.paths).filter(
      (p) => !existsSync(path.join(REPO, p.endsWith('/**') ? p.slice(0, -3) : p)),
    );
    assert.deepEqual(missing, []);
  });

  const checks: [string, (g: Graph) => string[]][] = [
    ['every workspace import resolves to a source file', (g) => g.unresolved],
    ['every source file is in the layer table', unlayered],
    ['a file imports only its own layer or lower ones', upwardImports],
    ['no package imports a later one (shared ← gateway ← scripts)', packageImports],
    ['no import cycle between files', fileCycles],
    ['no cycle between folders', folderCycles],
  ];
  for (const [name, check] of checks) {
    test(name, () => {
      const failures = check(graph);
      assert.deepEqual(failures, [], report(failures));
    });
  }
});
