// Static checks of deploy/kubernetes: the workload, probes, preStop drain, ConfigMap, Secret and Services in
// step with each other.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';

import {
  K8S,
  yamlOne,
  toArray,
  subset,
  selects,
  tomlKeyPaths,
  sampleKeyPaths,
  chorusListenPorts,
  sortedList,
  int,
  k8sObjects,
  byKind,
  chorusWorkload,
} from './support.mjs';


/** The value after `--flag` (or in `--flag=value`) in an argument list. */
function flagValue(args, flag) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (String(args[i]).startsWith(`${flag}=`)) return String(args[i]).slice(flag.length + 1);
  }
  return undefined;
}

/** A probe's or Service's port (number or name) → the container port number. */
function resolvePort(container, port) {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(String(port))) return Number(port);
  const named = toArray(container.ports).find((p) => p.name === port);
  assert.ok(named, `no container port named ${port}`);
  return named.containerPort;
}

function chorusConfig(objects, container) {
  const args = [...toArray(container.command), ...toArray(container.args)];
  const configPath = flagValue(args, '--config');
  assert.ok(configPath, 'the chorus container is not started with --config');
  const mount = toArray(container.volumeMounts).find((m) => m.mountPath === path.posix.dirname(configPath));
  assert.ok(mount, `nothing is mounted at ${path.posix.dirname(configPath)}`);
  const { pod } = chorusWorkload(objects);
  const volume = toArray(pod.volumes).find((v) => v.name === mount.name);
  assert.ok(volume?.configMap, `volume ${mount.name} is not a ConfigMap`);
  const fileName = path.posix.basename(configPath);
  const items = toArray(volume.configMap.items);
  const key = items.length > 0 ? items.find((i) => i.path === fileName)?.key : fileName;
  assert.ok(key, `the ConfigMap volume does not provide ${fileName}`);
  const configMap = byKind(objects, 'ConfigMap').find((c) => c.metadata.name === volume.configMap.name);
  assert.ok(configMap, `ConfigMap ${volume.configMap.name} is not defined`);
  assert.ok(typeof configMap.data?.[key] === 'string', `ConfigMap ${configMap.metadata.name} has no key ${key}`);
  return { configPath, text: configMap.data[key], name: configMap.metadata.name };
}

function secretData(secret) {
  const data = { ...(secret.stringData ?? {}) };
  for (const [k, v] of Object.entries(secret.data ?? {})) data[k] = Buffer.from(String(v), 'base64').toString('utf8');
  return data;
}

describe('deploy/kubernetes', () => {
  test('kustomization.yaml lists every manifest and sets the namespace', () => {
    const kustomization = yamlOne(path.join(K8S, 'kustomization.yaml'));
    assert.equal(kustomization.kind, 'Kustomization');
    const manifests = readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort();
    assert.deepEqual([...toArray(kustomization.resources)].sort(), manifests);
    const namespaces = byKind(k8sObjects(), 'Namespace');
    assert.equal(namespaces.length, 1);
    assert.equal(kustomization.namespace, namespaces[0].metadata.name);
    for (const o of k8sObjects().filter((x) => x.kind !== 'Namespace'))
      assert.equal(o.metadata?.namespace, namespaces[0].metadata.name, `${o.__file}: ${o.kind} ${o.metadata?.name}`);
  });

  test('has the expected kinds', () => {
    const objects = k8sObjects();
    const kinds = new Set(objects.map((o) => o.kind));
    for (const kind of ['Namespace', 'ConfigMap', 'Secret', 'Deployment', 'Service'])
      assert.ok(kinds.has(kind), `no ${kind}`);
    assert.ok(kinds.has('StatefulSet') || byKind(objects, 'Deployment').length >= 2, 'no Chorus StatefulSet/Deployment');
    for (const o of objects) {
      assert.ok(o.apiVersion && o.kind && o.metadata?.name, `${o.__file}: an object without apiVersion/kind/name`);
    }
    chorusWorkload(objects);
  });

  test('Chorus pods: host network, one per node, selector matches', () => {
    const { workload, pod, labels } = chorusWorkload(k8sObjects());
    assert.ok(subset(workload.spec.selector?.matchLabels, labels), 'selector does not match the pod labels');
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet', 'hostNetwork pods need ClusterFirstWithHostNet for Service DNS');
    // Service links would put CHORUS_SERVICE_HOST, CHORUS_PORT, ... (from the Service `chorus`) in the environment.
    assert.equal(pod.enableServiceLinks, false, 'enableServiceLinks must be false');
    const terms = toArray(pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution);
    assert.ok(
      terms.some((t) => t.topologyKey === 'kubernetes.io/hostname' && selects(t.labelSelector?.matchLabels, labels)),
      'no required podAntiAffinity on kubernetes.io/hostname for the Chorus pods',
    );
    assert.equal(pod.securityContext?.runAsNonRoot, true);
  });

  test('probes on GET /healthz :7880, preStop `chorus drain`, a grace period for calls to end', () => {
    const objects = k8sObjects();
    const { pod, container } = chorusWorkload(objects);
    const config = parseToml(chorusConfig(objects, container).text);
    const httpPort = config.http_port ?? 7880;
    assert.equal(httpPort, 7880);
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      const get = container[probe]?.httpGet;
      assert.ok(get, `${probe} is not an httpGet`);
      assert.equal(get.path, '/healthz', probe);
      assert.equal(resolvePort(container, get.port), 7880, probe);
    }
    const command = toArray(container.lifecycle?.preStop?.exec?.command).map(String);
    const line = command.join(' ');
    assert.match(line, /(^|[\s/])chorus drain\b/, `preStop does not run chorus drain: ${line}`);
    const url = flagValue(command, '--url');
    if (url !== undefined) assert.equal(new URL(url).port || '80', String(httpPort), `preStop --url ${url}`);
    const grace = pod.terminationGracePeriodSeconds;
    assert.ok(Number.isInteger(grace) && grace >= 600, `terminationGracePeriodSeconds ${grace}: too short for calls to end`);
    const drain = toArray(container.env).find((e) => e.name === 'CHORUS_DRAIN_TIMEOUT_SECS');
    if (drain?.value !== undefined) assert.ok(int(drain.value, 'CHORUS_DRAIN_TIMEOUT_SECS') < grace, 'drain timeout >= grace period');
  });

  test('env: node IP and id from the downward API, secret refs exist in the Secret', () => {
    const objects = k8sObjects();
    const { container } = chorusWorkload(objects);
    const env = Object.fromEntries(toArray(container.env).map((e) => [e.name, e]));
    assert.equal(env.CHORUS_NODE_IP?.valueFrom?.fieldRef?.fieldPath, 'status.hostIP');
    assert.equal(env.CHORUS_NODE_ID?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
    const secrets = Object.fromEntries(byKind(objects, 'Secret').map((s) => [s.metadata.name, secretData(s)]));
    const refs = toArray(container.env).filter((e) => e.valueFrom?.secretKeyRef);
    for (const name of ['CHORUS_API_KEY', 'CHORUS_API_SECRET', 'CHORUS_TURN_SECRET'])
      assert.ok(env[name]?.valueFrom?.secretKeyRef, `${name} does not come from a Secret`);
    for (const e of refs) {
      const { name, key } = e.valueFrom.secretKeyRef;
      assert.ok(secrets[name], `${e.name}: Secret ${name} is not defined`);
      assert.ok(key in secrets[name], `${e.name}: Secret ${name} has no key ${key}`);
    }
    for (const e of toArray(container.envFrom).filter((x) => x.secretRef))
      assert.ok(secrets[e.secretRef.name], `envFrom: Secret ${e.secretRef.name} is not defined`);
    // Committed secrets are placeholders, clearly marked.
    for (const [name, data] of Object.entries(secrets))
      for (const [key, value] of Object.entries(data))
        if (/secret/.test(key)) assert.match(value, /CHANGE-ME/, `Secret ${name}: ${key} should be a CHANGE-ME placeholder`);
  });

  test('the ConfigMap chorus.toml parses and uses only keys of config/chorus.sample.toml', () => {
    const objects = k8sObjects();
    const { container } = chorusWorkload(objects);
    const { text, name } = chorusConfig(objects, container);
    let config;
    assert.doesNotThrow(() => (config = parseToml(text)), `ConfigMap ${name}: chorus.toml is not TOML`);
    const allowed = sampleKeyPaths();
    const unknown = [...tomlKeyPaths(config)].filter((k) => !allowed.has(k));
    assert.deepEqual(unknown, [], `keys not in config/chorus.sample.toml (the server rejects unknown keys)`);
  });

  test('container ports are the ports the ConfigMap makes the node listen on', () => {
    const objects = k8sObjects();
    const { container } = chorusWorkload(objects);
    const config = parseToml(chorusConfig(objects, container).text);
    const expected = chorusListenPorts(
      {
        httpPort: config.http_port ?? 7880,
        rtcPort: config.rtc_port ?? 7882,
        workers: config.workers,
        rtcTcpPort: config.rtc_tcp_port ?? 7881,
        iceTcp: config.ice_tcp ?? true,
        turn: config.turn?.enabled ?? true,
        turnPort: config.turn?.port ?? 3478,
        turnTcp: config.turn?.tcp ?? true,
      },
      'configmap chorus.toml',
    );
    const declared = new Set();
    for (const p of toArray(container.ports)) {
      if (p.hostPort !== undefined) assert.equal(p.hostPort, p.containerPort, `port ${p.name}: hostPort != containerPort`);
      declared.add(`${p.containerPort}/${(p.protocol ?? 'TCP').toLowerCase()}`);
    }
    assert.deepEqual(sortedList(declared), sortedList(expected));
  });

  test('Services select the Chorus pods on port 7880', () => {
    const objects = k8sObjects();
    const { labels, container } = chorusWorkload(objects);
    const services = byKind(objects, 'Service').filter((s) => selects(s.spec?.selector, labels));
    assert.ok(services.length > 0, 'no Service selects the Chorus pods');
    for (const s of services) {
      const ports = toArray(s.spec.ports);
      assert.ok(ports.some((p) => resolvePort(container, p.targetPort ?? p.port) === 7880), `Service ${s.metadata.name}: no port to 7880`);
    }
  });

  test('CHORUS_REDIS_URL names the Redis Service, which selects a Redis Deployment', () => {
    const objects = k8sObjects();
    const { container } = chorusWorkload(objects);
    const ref = toArray(container.env).find((e) => e.name === 'CHORUS_REDIS_URL');
    assert.ok(ref, 'CHORUS_REDIS_URL is not set');
    let value = ref.value;
    if (ref.valueFrom?.secretKeyRef) {
      const secret = byKind(objects, 'Secret').find((s) => s.metadata.name === ref.valueFrom.secretKeyRef.name);
      value = secretData(secret)[ref.valueFrom.secretKeyRef.key];
    }
    const url = new URL(value);
    assert.match(url.protocol, /^rediss?:$/);
    const serviceName = url.hostname.split('.')[0];
    const service = byKind(objects, 'Service').find((s) => s.metadata.name === serviceName);
    assert.ok(service, `no Service ${serviceName} for ${value}`);
    const port = url.port || '6379';
    assert.ok(toArray(service.spec.ports).some((p) => String(p.port) === port), `Service ${serviceName}: no port ${port}`);
    const redis = byKind(objects, 'Deployment').find(
      (d) =>
        selects(service.spec.selector, d.spec.template.metadata.labels) &&
        d.spec.template.spec.containers.some((c) => /^redis:/.test(c.image)),
    );
    assert.ok(redis, `Service ${serviceName} selects no Deployment running a redis image`);
  });
});
