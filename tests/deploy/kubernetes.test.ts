// deploy/kubernetes/ (SPEC §11) against the gateway it runs. The objects are read from the YAML with
// the `yaml` package (so the checks run on any machine) and, when kubectl is installed, rendered by
// `kubectl kustomize` too, which must give the same objects. Then: the container's ports are the
// ones its --listen and --metrics-listen flags open (read by the gateway's own config loader), the
// probes' paths answer 200 on a real gateway at the listener their port names, the grace period
// outlasts the preStop pause plus the drain, metrics have their own Service, and a
// PodDisruptionBudget covers the pods.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { type Config, loadConfig } from '../../gateway/src/config.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { httpRequest } from '../helpers/http.ts';
import { findTool } from '../helpers/system-tool.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const DIR = path.join(REPO, 'deploy/kubernetes');

// The shapes this test reads; anything else in the objects is left to Kubernetes.
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
}
interface HttpProbe {
  httpGet: { path: string; port: string | number };
  timeoutSeconds?: number;
}
interface Container {
  name: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: HttpProbe;
  livenessProbe?: HttpProbe;
  startupProbe?: HttpProbe;
  lifecycle?: { preStop?: { sleep?: { seconds: number }; exec?: { command: string[] } } };
}
interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: { terminationGracePeriodSeconds?: number; containers: Container[] };
}
interface ServicePort {
  name?: string;
  port: number;
  targetPort: string | number;
}

/** The objects as the kustomization lists them, read without kubectl. */
function readObjects(): K8sObject[] {
  const kustomization = parseYaml(readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8')) as Record<
    string,
    unknown
  >;
  // Only `resources`: a transformer (labels, patches, images) would make this reading differ from kustomize's.
  assert.deepEqual(Object.keys(kustomization).sort(), ['apiVersion', 'kind', 'resources']);
  const out: K8sObject[] = [];
  for (const file of kustomization['resources'] as string[]) {
    for (const doc of parseAllDocuments(readFileSync(path.join(DIR, file), 'utf8'))) {
      assert.deepEqual(doc.errors, [], `${file} is valid YAML`);
      const obj = doc.toJS() as K8sObject | null;
      if (obj) out.push(obj);
    }
  }
  return sortObjects(out);
}

function sortObjects(objects: K8sObject[]): K8sObject[] {
  const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
  return [...objects].sort((a, b) => key(a).localeCompare(key(b)));
}

const only = <T>(list: T[], what: string): T => {
  assert.equal(list.length, 1, `exactly one ${what}`);
  return list[0]!;
};

const objects = readObjects();
const deployment = only(
  objects.filter((o) => o.kind === 'Deployment'),
  'Deployment',
);
const template = deployment.spec['template'] as PodTemplate;
const container = only(template.spec.containers, 'container');
const podLabels = template.metadata.labels;
const services = objects.filter((o) => o.kind === 'Service');

/** `serve`'s configuration in the container: its flags and literal env values, read by config.ts. */
function containerConfig(): Config {
  const argv = [...(container.command ?? []), ...(container.args ?? [])];
  const serve = argv.indexOf('serve');
  assert.ok(serve >= 0, `the container runs agentgate serve: ${argv.join(' ')}`);
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return loadConfig(argv.slice(serve + 1), env);
}
const config = containerConfig();

/** The container port a probe or Service names (by name or number). */
function containerPort(port: string | number): number {
  if (typeof port === 'number') return port;
  const p = container.ports?.find((x) => x.name === port);
  assert.ok(p, `the container has a port named ${port}`);
  return p.containerPort;
}

/** True when `selector` picks the pods of the Deployment. */
const selects = (selector: Record<string, string> | undefined) =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => podLabels[k] === v);

describe('deploy/kubernetes', () => {
  const kubectl = findTool('kubectl');
  test('kubectl kustomize renders the same objects', {
    skip: kubectl ? false : 'skipped: kubectl is not installed (the YAML is checked without it)',
  }, () => {
    const r = spawnSync(kubectl!, ['kustomize', DIR], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `kubectl kustomize: ${r.stderr}${r.error ?? ''}`);
    const rendered = parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject);
    assert.deepEqual(sortObjects(rendered), objects);
  });

  test('the Deployment selects its own pods and runs agentgate serve with DATABASE_URL from a Secret', () => {
    const selector = deployment.spec['selector'] as { matchLabels: Record<string, string> };
    assert.ok(selects(selector.matchLabels), 'the selector matches the pod labels');
    assert.ok((deployment.spec['replicas'] as number) >= 2, 'at least two replicas');
    const db = container.env?.find((e) => e.name === 'DATABASE_URL');
    assert.ok(db?.valueFrom?.secretKeyRef, 'DATABASE_URL comes from a Secret, never a literal');
    assert.equal(config.workers, 1, 'one process per pod: scale with replicas');
  });

  test('the container ports are the ones --listen and --metrics-listen open, on every address', () => {
    assert.equal(config.listenHost, '0.0.0.0', '--listen reachable from outside the pod');
    assert.equal(containerPort('http'), config.listenPort);
    assert.equal(config.metricsListenHost, '0.0.0.0', '--metrics-listen reachable by Prometheus');
    assert.equal(containerPort('metrics'), config.metricsListenPort);
    assert.equal(container.ports?.length, 2, 'no other port');
  });

  test('readiness on /readyz, liveness and startup on /healthz, on the agents port', () => {
    const probes = { readinessProbe: '/readyz', livenessProbe: '/healthz', startupProbe: '/healthz' } as const;
    for (const [name, want] of Object.entries(probes)) {
      const probe = container[name as keyof typeof probes];
      assert.ok(probe, `${name} is set`);
      assert.equal(probe.httpGet.path, want, name);
      assert.equal(containerPort(probe.httpGet.port), config.listenPort, `${name} on the --listen port`);
    }
    // /readyz answers within 3 s even when the database does not (SPEC §3).
    assert.ok((container.readinessProbe!.timeoutSeconds ?? 1) > 3, 'the readiness timeout exceeds 3 s');
  });

  test('the grace period outlasts the preStop pause plus the drain', () => {
    const preStop = container.lifecycle?.preStop;
    const pauseS =
      preStop?.sleep?.seconds ?? (preStop?.exec?.command[0] === 'sleep' ? Number(preStop.exec.command[1]) : Number.NaN);
    assert.ok(pauseS >= 1, `a preStop pause of at least 1 s (${JSON.stringify(preStop)})`);
    const grace = template.spec.terminationGracePeriodSeconds ?? 30;
    const drainS = config.shutdownTimeoutMs / 1000;
    // Kubernetes sends SIGTERM after the preStop hook, and SIGKILL when the grace period ends.
    assert.ok(
      grace >= pauseS + drainS + 5,
      `terminationGracePeriodSeconds ${grace} must be at least preStop ${pauseS} + shutdown timeout ${drainS} + 5`,
    );
  });

  test('agents and metrics have Services of their own', () => {
    const byPort = (name: string) =>
      services.filter((s) =>
        (s.spec['ports'] as ServicePort[]).some((p) => containerPort(p.targetPort) === containerPort(name)),
      );
    for (const s of services) assert.ok(selects(s.spec['selector'] as Record<string, string>), s.metadata.name);
    const agents = only(byPort('http'), 'Service of the agents port');
    const metrics = only(byPort('metrics'), 'Service of the metrics port');
    assert.notEqual(agents.metadata.name, metrics.metadata.name);
    assert.equal((agents.spec['ports'] as ServicePort[]).length, 1, 'the agents Service exposes no metrics');
    assert.equal((metrics.spec['ports'] as ServicePort[]).length, 1);
    const a = metrics.metadata.annotations ?? {};
    assert.equal(Number(a['prometheus.io/port']), config.metricsListenPort);
    assert.equal(a['prometheus.io/path'], '/metrics');
  });

  test('a PodDisruptionBudget lets one pod go at a time', () => {
    const pdb = only(
      objects.filter((o) => o.kind === 'PodDisruptionBudget'),
      'PodDisruptionBudget',
    );
    const selector = pdb.spec['selector'] as { matchLabels: Record<string, string> };
    assert.ok(selects(selector.matchLabels), 'the budget selects the pods');
    const replicas = deployment.spec['replicas'] as number;
    const maxUnavailable = pdb.spec['maxUnavailable'] as number | undefined;
    const minAvailable = pdb.spec['minAvailable'] as number | undefined;
    const allowed = maxUnavailable ?? replicas - (minAvailable ?? replicas);
    assert.ok(allowed >= 1 && allowed < replicas, `${allowed} of ${replicas} pods may be evicted at once`);
  });

  describe('the probe paths on a real gateway', () => {
    let db: TestDatabase;
    let gw: GatewayProcess;
    let metricsOrigin: string;

    before(async () => {
      db = await freshDatabase();
      gw = await startGateway({ databaseUrl: db.url, args: ['--metrics-listen', '127.0.0.1:0'] });
      const line = await gw.waitForLog((e) => e['msg'] === 'listening');
      metricsOrigin = new URL(String(line['metricsUrl'])).origin;
    });
    after(async () => {
      await gw?.stop();
      await db?.drop();
    });

    test('each probe answers 200 at the listener its port names; /metrics only on the metrics one', async () => {
      const origin = (port: number) => (port === config.listenPort ? gw.httpUrl : metricsOrigin);
      for (const probe of [container.readinessProbe!, container.livenessProbe!, container.startupProbe!]) {
        const url = `${origin(containerPort(probe.httpGet.port))}${probe.httpGet.path}`;
        assert.equal((await httpRequest(url)).status, 200, url);
      }
      const metricsPath = services
        .map((s) => s.metadata.annotations?.['prometheus.io/path'])
        .find((p) => p !== undefined);
      assert.equal((await httpRequest(`${metricsOrigin}${metricsPath}`)).status, 200);
      assert.equal((await httpRequest(`${gw.httpUrl}${metricsPath}`)).status, 404, 'not on the agents port');
    });
  });
});
