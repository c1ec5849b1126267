// k8s/: every overlay renders with `kubectl kustomize`, every object
// validates offline against the Kubernetes schemas (kubernetes-models), and
// the rules an admin relies on hold (probes, hardening, selectors, the admin
// port closed to other namespaces, configuration the service accepts).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../src/config/index.ts';
import { createMetrics } from '../src/observability/metrics.ts';

const K8S = new URL('../k8s/', import.meta.url).pathname;
const OVERLAYS = ['dev', 'prod'];

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

/** YAML → JSON objects, offline (kubectl patch --local prints each object as JSON). */
function toObjects(yamlFile: string): Obj[] {
  const json = execFileSync('kubectl', ['patch', '--local', '-f', yamlFile, '--type', 'merge', '-p', '{}', '-o', 'json'], { encoding: 'utf8' });
  return JSON.parse(`[${json.trim().replace(/^\}\n\{$/gm, '},\n{')}]`) as Obj[];
}

function render(overlay: string): Obj[] {
  const yaml = execFileSync('kubectl', ['kustomize', `${K8S}overlays/${overlay}`], { encoding: 'utf8' });
  const file = `/tmp/identity-k8s-${overlay}-${process.pid}.yaml`;
  execFileSync('sh', ['-c', `cat > ${file}`], { input: yaml });
  try {
    return toObjects(file);
  } finally {
    execFileSync('rm', ['-f', file]);
  }
}

/** Validates against the Kubernetes schema of its apiVersion/kind; throws when invalid. */
async function validateObject(obj: Obj): Promise<void> {
  const mod = (await import(`kubernetes-models/${obj.apiVersion}`)) as Record<string, new (o: unknown) => { validate(): void }>;
  const Model = mod[obj.kind];
  assert.ok(Model, `no schema for ${obj.apiVersion} ${obj.kind}`);
  new Model(obj).validate();
}

const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

const metricNames = (() => {
  const metrics = createMetrics(); // every metric is registered; nothing is collected
  return new Set(metrics.registry.getMetricsAsArray().map((m) => m.name));
})();

const secretTemplate = toObjects(`${K8S}secret.template.yaml`)[0]!;

test('the Secret template holds the three keys and only placeholders, and the service refuses them', async () => {
  await validateObject(secretTemplate);
  assert.equal(secretTemplate.kind, 'Secret');
  assert.deepEqual(Object.keys(secretTemplate.stringData).sort(), ['DATABASE_URL', 'KEY_ENCRYPTION_KEY', 'REDIS_URL']);
  for (const v of Object.values(secretTemplate.stringData as Record<string, string>)) assert.match(v, /^REPLACE_ME/);
  assert.throws(() => loadConfig({ NODE_ENV: 'production', ISSUER: 'https://id.example.com', ...secretTemplate.stringData }), /DATABASE_URL|KEY_ENCRYPTION_KEY/);
});

test('a broken manifest fails validation (the validator is really on)', async () => {
  const deployment = render('dev').find((o) => o.kind === 'Deployment')!;
  await assert.rejects(validateObject({ ...deployment, spec: { ...deployment.spec, replicas: 'two' } }), /integer/);
  await assert.rejects(validateObject({ ...deployment, spec: { ...deployment.spec, template: { spec: {} } } }), /containers/);
  await assert.rejects(validateObject({ ...deployment, apiVersion: 'apps/v9' }));
});

for (const overlay of OVERLAYS) {
  describe(`overlay ${overlay}`, () => {
    const objects = render(overlay);
    const one = (kind: string, pred: (o: Obj) => boolean = () => true) => {
      const found = objects.filter((o) => o.kind === kind && pred(o));
      assert.equal(found.length, 1, `exactly one ${kind}`);
      return found[0]!;
    };

    test('every object is valid for its Kubernetes schema', async () => {
      for (const obj of objects) {
        if (obj.apiVersion === 'monitoring.coreos.com/v1') continue; // PrometheusRule, ServiceMonitor: checked below
        await validateObject(obj).catch((err: Error) => assert.fail(`${obj.kind}/${obj.metadata.name}: ${err.message}`));
      }
      const kinds = objects.map((o) => o.kind).sort();
      for (const k of ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Job', 'NetworkPolicy', 'PodDisruptionBudget', 'Service']) {
        assert.ok(kinds.includes(k), `has a ${k}`);
      }
      assert.ok(!kinds.includes('Secret'), 'no Secret is shipped: applying must never overwrite real secrets');
      for (const obj of objects) assert.ok(obj.metadata.namespace, `${obj.kind} has a namespace`);
    });

    test('Deployment: ≥ 2 replicas, probes on the admin port, hardened, resources set', () => {
      const d = one('Deployment');
      assert.ok(d.spec.replicas >= 2);
      const pod = d.spec.template.spec;
      assert.equal(pod.automountServiceAccountToken, false);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.ok(pod.securityContext.runAsUser > 0);
      assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
      assert.equal(pod.containers.length, 1);
      const c = pod.containers[0];
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
      assert.equal(c.securityContext.capabilities.add, undefined);
      for (const k of ['cpu', 'memory']) assert.ok(c.resources.requests[k] && c.resources.limits[k] !== undefined, `resources.${k}`);
      // README "Performance": 362 MB resident with logins saturating both cores.
      const mi = (q: string) => Number(/^(\d+)Mi$/.exec(q)?.[1] ?? NaN) * 2 ** 20;
      assert.ok(mi(c.resources.limits.memory) >= 362e6, `memory limit ${c.resources.limits.memory} holds the saturated RSS`);
      assert.ok(mi(c.resources.requests.memory) >= 187e6, `memory request ${c.resources.requests.memory} holds the idle RSS`);

      const config = one('ConfigMap').data as Record<string, string>;
      const portOf = (p: string | number) => (typeof p === 'number' ? p : c.ports.find((x: { name: string }) => x.name === p)?.containerPort);
      assert.equal(portOf('admin'), Number(config.ADMIN_PORT));
      assert.equal(portOf('http'), Number(config.PORT));
      const probes = { startupProbe: '/livez', readinessProbe: '/readyz', livenessProbe: '/livez' } as const;
      for (const [probe, path] of Object.entries(probes)) {
        assert.equal(c[probe]?.httpGet?.path, path, `${probe} path`);
        assert.equal(portOf(c[probe].httpGet.port), Number(config.ADMIN_PORT), `${probe} on the admin port`);
      }
      // The service must have finished its own shutdown before the kubelet's SIGKILL.
      assert.ok(Number(config.SHUTDOWN_GRACE_MS) < (pod.terminationGracePeriodSeconds ?? 30) * 1000);
    });

    test('configuration and secret references resolve, and the service accepts the ConfigMap', () => {
      const cm = one('ConfigMap');
      const envExample = readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
      for (const key of Object.keys(cm.data)) assert.match(envExample, new RegExp(`^#? ?${key}=`, 'm'), `${key} is a known variable`);
      const config = loadConfig({
        ...cm.data,
        DATABASE_URL: 'postgresql://u:p@db:5432/identity',
        REDIS_URL: 'redis://redis:6379',
        KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      });
      assert.equal(config.env, 'production');
      assert.equal(config.host, '0.0.0.0');
      for (const kind of ['Deployment', 'Job']) {
        const containers = one(kind).spec.template.spec.containers;
        for (const c of containers) {
          const refs = c.envFrom as { configMapRef?: { name: string }; secretRef?: { name: string } }[];
          assert.ok(refs.some((r) => r.configMapRef?.name === cm.metadata.name), `${kind} uses the generated ConfigMap`);
          assert.ok(refs.some((r) => r.secretRef?.name === secretTemplate.metadata.name), `${kind} uses the Secret`);
        }
      }
    });

    test('migration Job runs `migrate` with the same hardening, once', () => {
      const job = one('Job');
      const pod = job.spec.template.spec;
      assert.deepEqual(pod.containers[0].command, ['node', 'src/cli.ts', 'migrate']);
      assert.equal(pod.restartPolicy, 'Never');
      assert.equal(pod.automountServiceAccountToken, false);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(pod.containers[0].securityContext.readOnlyRootFilesystem, true);
      assert.deepEqual(pod.containers[0].securityContext.capabilities.drop, ['ALL']);
      assert.equal(pod.containers[0].image, one('Deployment').spec.template.spec.containers[0].image, 'same image as the server');
    });

    test('Services, HPA and PDB select the server pods and never the migration pod', () => {
      const d = one('Deployment');
      const serverLabels = d.spec.template.metadata.labels;
      const jobLabels = one('Job').spec.template.metadata.labels;
      assert.ok(matches(d.spec.selector.matchLabels, serverLabels));
      const pub = one('Service', (s) => s.spec.ports.some((p: { targetPort: string }) => p.targetPort === 'http'));
      const admin = one('Service', (s) => s.spec.ports.some((p: { targetPort: string }) => p.targetPort === 'admin'));
      assert.notEqual(pub.metadata.name, admin.metadata.name);
      assert.ok(!pub.spec.ports.some((p: { targetPort: string }) => p.targetPort === 'admin'), 'admin port not on the public Service');
      for (const s of [pub, admin]) {
        assert.ok(matches(s.spec.selector, serverLabels), `${s.metadata.name} selects the server`);
        assert.ok(!matches(s.spec.selector, jobLabels), `${s.metadata.name} does not select the migration pod`);
        assert.notEqual(s.spec.type, 'LoadBalancer');
      }
      const pdb = one('PodDisruptionBudget');
      assert.ok(matches(pdb.spec.selector.matchLabels, serverLabels) && !matches(pdb.spec.selector.matchLabels, jobLabels));
      const hpa = one('HorizontalPodAutoscaler');
      assert.equal(hpa.spec.scaleTargetRef.kind, 'Deployment');
      assert.equal(hpa.spec.scaleTargetRef.name, d.metadata.name);
      assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas >= hpa.spec.minReplicas);
    });

    test('NetworkPolicy: public port open, admin port only from this namespace', () => {
      const np = one('NetworkPolicy', (o) => o.metadata.name === 'identity');
      const config = one('ConfigMap').data as Record<string, string>;
      assert.ok(matches(np.spec.podSelector.matchLabels, one('Deployment').spec.template.metadata.labels));
      assert.ok(np.spec.policyTypes.includes('Ingress'));
      const rules = np.spec.ingress as { from?: Record<string, unknown>[]; ports?: { port: number | string }[] }[];
      const allows = (port: string) => rules.filter((r) => !r.ports || r.ports.some((p) => String(p.port) === port || p.port === (port === config.ADMIN_PORT ? 'admin' : 'http')));
      assert.ok(allows(config.PORT!).length > 0, 'public port reachable');
      const admin = allows(config.ADMIN_PORT!);
      assert.ok(admin.length > 0, 'admin port reachable from somewhere (probes, metrics)');
      for (const rule of admin) {
        assert.ok(rule.from && rule.from.length > 0, 'an admin rule without `from` would open it to everyone');
        for (const peer of rule.from) {
          assert.deepEqual(Object.keys(peer), ['podSelector'], 'only pods of this namespace (no namespaceSelector, no ipBlock)');
        }
      }
    });

    test('monitoring, if included: a labelled ServiceMonitor on the admin Service and PrometheusRule, Prometheus let in', () => {
      const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
      if (overlay === 'prod') assert.equal(monitors.length, 1, 'prod includes components/monitoring');
      for (const sm of monitors) {
        const rule = one('PrometheusRule');
        // The Prometheus Operator selects both by label (serviceMonitorSelector, ruleSelector).
        assert.equal(sm.metadata.labels?.release, 'kube-prometheus-stack');
        assert.equal(rule.metadata.labels?.release, 'kube-prometheus-stack');
        const admin = one('Service', (o) => matches(sm.spec.selector.matchLabels, o.metadata.labels));
        assert.equal(admin.metadata.name, 'identity-admin', 'selects the admin Service only');
        assert.deepEqual(
          sm.spec.endpoints.map((e: { port: string; path: string }) => [e.port, e.path]),
          [['admin', '/metrics']],
        );
        assert.ok(admin.spec.ports.some((p: { name: string }) => p.name === 'admin'));
        const np = one('NetworkPolicy', (o) => o.metadata.name === 'identity-allow-prometheus');
        assert.deepEqual(np.spec.ingress, [
          { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ port: 'admin', protocol: 'TCP' }] },
        ]);
      }
    });

    test('alert rules, if any, are well formed and use metrics the service exports', () => {
      const rules = objects.filter((o) => o.kind === 'PrometheusRule');
      if (overlay === 'prod') assert.equal(rules.length, 1, 'prod ships alerts');
      for (const pr of rules) {
        assert.equal(pr.apiVersion, 'monitoring.coreos.com/v1');
        for (const group of pr.spec.groups) {
          assert.ok(group.name && group.rules.length > 0);
          for (const rule of group.rules) {
            assert.match(rule.alert, /^[A-Z][A-Za-z0-9]+$/);
            assert.match(rule.labels.severity, /^(critical|warning|info)$/);
            assert.ok(rule.annotations.summary);
            if (rule.for) assert.match(rule.for, /^\d+[smhd]$/);
            const used = String(rule.expr).match(/\b(identity_[a-z_]+|rate_limit_[a-z_]+|password_hashes_[a-z_]+)/g) ?? [];
            assert.ok(used.length > 0, `${rule.alert} uses a service metric`);
            for (const name of used) {
              const base = name.replace(/_(bucket|sum|count)$/, '');
              assert.ok(metricNames.has(base), `${rule.alert}: ${name} is exported`);
            }
          }
        }
      }
    });
  });
}

test('an image set in an overlay changes the Deployment and the migration Job', () => {
  // A scratch overlay on top of prod, as an operator writes one.
  const dir = mkdtempSync(join(tmpdir(), 'identity-overlay-'));
  try {
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        `  - ${relative(dir, `${K8S}overlays/prod`)}`,
        'images:',
        '  - name: ghcr.io/example/identity-service',
        '    newName: registry.example.net/identity',
        '    newTag: 1.2.3',
        '',
      ].join('\n'),
    );
    const yaml = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
    writeFileSync(join(dir, 'out.yaml'), yaml);
    const objects = toObjects(join(dir, 'out.yaml'));
    const images = (kind: string) =>
      objects.filter((o) => o.kind === kind).flatMap((o) => o.spec.template.spec.containers.map((c: { image: string }) => c.image));
    assert.deepEqual(images('Deployment'), ['registry.example.net/identity:1.2.3']);
    assert.deepEqual(images('Job'), ['registry.example.net/identity:1.2.3']);
    assert.doesNotMatch(yaml, /ghcr\.io\/example/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The dev overlay's own tag is not silently ignored either.
  for (const o of render('dev').filter((o) => o.kind === 'Deployment' || o.kind === 'Job')) {
    assert.equal(o.spec.template.spec.containers[0].image, 'ghcr.io/example/identity-service:dev');
  }
});
