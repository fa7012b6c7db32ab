// The operations kit of SPEC §11 as the tests read it: every PromQL expression of the Grafana
// dashboard and of the alert rules, parsed with Prometheus's own grammar (@prometheus-io/lezer-promql),
// the metric names each one selects, and the headings of the runbook as GitHub anchors.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SyntaxNode, Tree } from '@lezer/common';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
const DASHBOARD_FILE = 'deploy/grafana/agentgate.json';
export const ALERTS_FILE = 'deploy/prometheus/alerts.yml';
export const ALERT_TESTS_FILE = 'deploy/prometheus/alerts.test.yml';
export const RUNBOOK_FILE = 'docs/runbook.md';

export function readRepoFile(file: string): string {
  return readFileSync(`${REPO}/${file}`, 'utf8');
}

/** One PromQL expression of the kit and where it is (for messages). */
export interface KitQuery {
  where: string;
  expr: string;
}

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
export interface Panel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
export interface TemplateVar {
  type: string;
  name: string;
  query?: string | { query?: string };
  definition?: string;
  datasource?: { type?: string; uid?: string };
}
export interface Dashboard {
  __inputs?: { name: string; type: string; pluginId: string }[];
  schemaVersion: number;
  panels: Panel[];
  templating: { list: TemplateVar[] };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readRepoFile(DASHBOARD_FILE)) as Dashboard;
}

/** Every panel, rows' nested panels included. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** The metric selector of a `label_values(SELECTOR, label)` variable query. */
function labelValuesSelector(query: string): string | undefined {
  return /^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$/.exec(query.trim())?.[1];
}

export function variableQuery(v: TemplateVar): string {
  return typeof v.query === 'string' ? v.query : (v.query?.query ?? v.definition ?? '');
}

/** Every expression of the dashboard: each panel target, and each query variable's selector. */
export function dashboardQueries(d: Dashboard = readDashboard()): KitQuery[] {
  const out: KitQuery[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      if (t.expr !== undefined) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
    }
  }
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const q = variableQuery(v);
    const selector = labelValuesSelector(q);
    if (selector === undefined) throw new Error(`variable ${v.name}: not a label_values(selector, label) query: ${q}`);
    out.push({ where: `variable ${v.name}`, expr: selector });
  }
  return out;
}

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function alertRules(): AlertRule[] {
  const doc = parseYaml(readRepoFile(ALERTS_FILE)) as { groups: { rules: AlertRule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

export function alertQueries(): KitQuery[] {
  return alertRules().map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }));
}

export interface AlertTestCase {
  name?: string;
  alert_rule_test?: { alertname: string; eval_time: string; exp_alerts?: unknown[] }[];
}

export function alertTestCases(): AlertTestCase[] {
  return (parseYaml(readRepoFile(ALERT_TESTS_FILE)) as { tests: AlertTestCase[] }).tests;
}

/** Values of the dashboard's variables, for a query sent to a real Prometheus or to the parser. */
export interface GrafanaVars {
  job: string;
  instance: string;
  rateInterval: string;
}

const VARIABLE = /\$(?:\{(\w+)\}|(\w+))/g;

/** `expr` with Grafana's variables replaced; an unknown variable throws (it would not parse as PromQL). */
export function substitute(expr: string, v: GrafanaVars): string {
  const values: Record<string, string> = { job: v.job, instance: v.instance, __rate_interval: v.rateInterval };
  return expr.replace(VARIABLE, (whole, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? '';
    const value = values[name];
    if (value === undefined) throw new Error(`unknown Grafana variable ${whole} in ${expr}`);
    return value;
  });
}

export interface ParsedQuery {
  tree: Tree;
  text: string;
  /** Offsets of the parser's error nodes (empty when the expression is valid PromQL). */
  errors: number[];
  /** Every metric name the expression selects. */
  metricNames: string[];
}

function children(node: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let c = node.firstChild; c; c = c.nextSibling) out.push(c);
  return out;
}

/** A label matcher of a selector: `name op "value"`. */
export interface Matcher {
  name: string;
  op: string;
  value: string;
}

function matchersOf(selector: SyntaxNode, text: string): Matcher[] {
  const list = children(selector).find((c) => c.name === 'LabelMatchers');
  if (!list) return [];
  return children(list)
    .filter((m) => m.name === 'UnquotedLabelMatcher')
    .map((m) => {
      const [name, op, value] = children(m);
      return {
        name: name ? text.slice(name.from, name.to) : '',
        op: op ? text.slice(op.from, op.to) : '',
        value: value ? (JSON.parse(text.slice(value.from, value.to)) as string) : '',
      };
    });
}

/** Every vector selector of `text`: its metric name (or undefined) and label matchers. */
export function selectors(tree: Tree, text: string): { name: string | undefined; matchers: Matcher[] }[] {
  const out: { name: string | undefined; matchers: Matcher[] }[] = [];
  tree.iterate({
    enter(n) {
      if (n.name !== 'VectorSelector') return;
      const id = children(n.node).find((c) => c.name === 'Identifier');
      const matchers = matchersOf(n.node, text);
      const byName = matchers.find((m) => m.name === '__name__' && m.op === '=');
      out.push({ name: id ? text.slice(id.from, id.to) : byName?.value, matchers });
    },
  });
  return out;
}

export function parsePromQL(text: string): ParsedQuery {
  const tree = parser.parse(text);
  const errors: number[] = [];
  tree.iterate({
    enter(n) {
      if (n.type.isError) errors.push(n.from);
    },
  });
  const metricNames = [...new Set(selectors(tree, text).flatMap((s) => (s.name ? [s.name] : [])))];
  return { tree, text, errors, metricNames };
}

/** The parse of a kit query with placeholder values for the variables. */
export function parseKitQuery(q: KitQuery): ParsedQuery {
  return parsePromQL(substitute(q.expr, { job: 'agentgate', instance: '.+', rateInterval: '1m' }));
}

/** Every metric name the dashboard and the alert rules select, with the places that use each. */
export function kitMetricNames(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const q of [...dashboardQueries(), ...alertQueries()]) {
    for (const name of parseKitQuery(q).metricNames) out.set(name, [...(out.get(name) ?? []), q.where]);
  }
  return out;
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function githubSlug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of every heading of a markdown text (outside code fences), duplicates numbered as GitHub does. */
export function markdownAnchors(markdown: string): string[] {
  const seen = new Map<string, number>();
  const out: string[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const m = fenced ? null : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = githubSlug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.push(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}
