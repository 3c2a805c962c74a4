// Static checks of deploy/: the Dockerfile, Docker Compose, Kubernetes manifests, Prometheus and Grafana
// provisioning. CI cannot run Docker or Kubernetes, so nothing here builds an image or starts a container; the
// checks read the files and compare them with each other, with config/chorus.sample.toml, and with the `--help`
// of the built server (CHORUS_BIN, default target/ci/chorus), so a renamed flag or variable breaks the build here
// instead of a deployment.
//
// Run from the repository root: (cd tests/deploy && npm ci) && CHORUS_BIN=target/ci/chorus node --test tests/deploy/check.test.mjs

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { parse as parseToml } from 'smol-toml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEPLOY = path.join(ROOT, 'deploy');
const K8S = path.join(DEPLOY, 'kubernetes');
const rel = (file) => path.relative(ROOT, file);
const read = (file) => readFileSync(file, 'utf8');

// ---------------------------------------------------------------------------------------------------------------
// Loading

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    if (name === 'node_modules' || name === '.git') continue;
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...walk(full));
    else out.push(full);
  }
  return out;
}

const DEPLOY_FILES = walk(DEPLOY);
const YAML_FILES = DEPLOY_FILES.filter((f) => /\.ya?ml$/.test(f));

/** Every document of a YAML file, parsed with merge keys (`<<:`) as Compose reads them. */
function yamlDocuments(file) {
  const docs = YAML.parseAllDocuments(read(file), { merge: true, prettyErrors: true });
  return Array.from(docs);
}

function yamlValues(file) {
  return yamlDocuments(file)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${rel(file)}: ${doc.errors.map(String).join('; ')}`);
      return doc.toJS({ maxAliasCount: 1000 });
    })
    .filter((value) => value !== null && value !== undefined);
}

function yamlOne(file) {
  const values = yamlValues(file);
  assert.equal(values.length, 1, `${rel(file)}: expected one YAML document, found ${values.length}`);
  return values[0];
}

/** KEY=VALUE lines of an env file (Compose `env_file`), comments and blank lines skipped. */
function parseEnvFile(file) {
  const env = {};
  for (const line of read(file).split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const eq = trimmed.indexOf('=');
    assert.ok(eq > 0, `${rel(file)}: not KEY=VALUE: ${trimmed}`);
    env[trimmed.slice(0, eq).trim()] = trimmed.slice(eq + 1).trim();
  }
  return env;
}

const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);
const toArray = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
const subset = (small, big) => Object.entries(small ?? {}).every(([k, v]) => big?.[k] === v);
/** A non-empty label selector that matches these labels. */
const selects = (selector, labels) => Object.keys(selector ?? {}).length > 0 && subset(selector, labels);

/** Dotted key paths of a parsed TOML value: tables and arrays of tables are walked, everything else is a leaf. */
function tomlKeyPaths(value, prefix = '') {
  const out = new Set();
  for (const [key, v] of Object.entries(value)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (isPlainObject(v)) for (const p of tomlKeyPaths(v, name)) out.add(p);
    else if (Array.isArray(v) && v.length > 0 && v.every(isPlainObject))
      for (const item of v) for (const p of tomlKeyPaths(item, name)) out.add(p);
    else out.add(name);
  }
  return out;
}

/**
 * Every key config/chorus.sample.toml documents, set or commented out (`# workers = 4` counts, and so do keys
 * under a commented table header such as `# [[keys]]`), as dotted paths.
 */
function sampleKeyPaths() {
  const text = read(path.join(ROOT, 'config', 'chorus.sample.toml'));
  // The set part must itself be valid TOML.
  parseToml(text);
  const keys = new Set();
  let section = '';
  for (const line of text.split('\n')) {
    const header = /^#?\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?\s*$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    const key = /^#?\s*([a-z][a-z0-9_]*)\s*=/.exec(line);
    if (key) keys.add(section ? `${section}.${key[1]}` : key[1]);
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------------------------
// Ports

/** "7882-7883" → [7882, 7883]; "7880" → [7880]. */
function portRange(text) {
  const [a, b] = String(text).split('-').map((n) => Number.parseInt(n, 10));
  assert.ok(Number.isInteger(a), `bad port: ${text}`);
  const end = b === undefined ? a : b;
  assert.ok(end >= a, `bad port range: ${text}`);
  return Array.from({ length: end - a + 1 }, (_, i) => a + i);
}

/** A Compose `ports:` entry (short or long syntax) → [{host, container, proto}]. */
function composePortMappings(entry) {
  if (isPlainObject(entry)) {
    const proto = entry.protocol ?? 'tcp';
    const containers = portRange(entry.target);
    const hosts = entry.published === undefined ? [] : portRange(entry.published);
    return containers.map((container, i) => ({ host: hosts[i], container, proto }));
  }
  let spec = String(entry);
  let proto = 'tcp';
  const slash = spec.lastIndexOf('/');
  if (slash >= 0) {
    proto = spec.slice(slash + 1);
    spec = spec.slice(0, slash);
  }
  const parts = spec.split(':');
  const container = portRange(parts.at(-1));
  const host = parts.length >= 2 ? portRange(parts.at(-2)) : [];
  assert.ok(host.length === 0 || host.length === container.length, `port ranges of different sizes: ${entry}`);
  return container.map((c, i) => ({ host: host[i], container: c, proto }));
}

/**
 * The ports a Chorus node listens on, as "port/proto", from its settings (defaults as in
 * config/chorus.sample.toml). `workers` must be set: by default it is the number of CPUs, unknown here.
 */
function chorusListenPorts(settings, where) {
  const { httpPort = 7880, rtcPort = 7882, workers, rtcTcpPort = 7881 } = settings;
  const { iceTcp = true, turn = true, turnPort = 3478, turnTcp = true } = settings;
  assert.ok(Number.isInteger(workers) && workers > 0, `${where}: set the number of media workers (the UDP port range)`);
  const ports = new Set([`${httpPort}/tcp`]);
  for (let i = 0; i < workers; i++) ports.add(`${rtcPort + i}/udp`);
  if (iceTcp) ports.add(`${rtcTcpPort}/tcp`);
  if (turn) {
    ports.add(`${turnPort}/udp`);
    if (turnTcp) ports.add(`${turnPort}/tcp`);
  }
  return ports;
}

const sortedList = (set) => [...set].sort();

// ---------------------------------------------------------------------------------------------------------------
// Every YAML file parses

describe('YAML under deploy/', () => {
  test('there are YAML files', () => {
    assert.ok(YAML_FILES.length >= 5, `found only ${YAML_FILES.map(rel).join(', ')}`);
  });
  for (const file of YAML_FILES) {
    test(`${rel(file)} parses (every document)`, () => {
      const docs = yamlDocuments(file);
      assert.ok(docs.length > 0, 'no YAML document');
      for (const [i, doc] of docs.entries()) {
        assert.deepEqual(doc.errors.map(String), [], `document ${i + 1} has errors`);
        assert.deepEqual(doc.warnings.map(String), [], `document ${i + 1} has warnings`);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Docker Compose

const CHORUS_NODES = ['chorus-1', 'chorus-2'];

function composeFile() {
  return yamlOne(path.join(DEPLOY, 'docker-compose.yml'));
}

/** A service's effective environment: env_file entries, then `environment` (which wins, as in Compose). */
function serviceEnv(service) {
  const env = {};
  for (const entry of toArray(service.env_file)) {
    const file = typeof entry === 'string' ? entry : entry.path;
    let full = path.resolve(DEPLOY, file);
    // The real file holds secrets and is not in git; its template stands in for it.
    if (!existsSync(full) && existsSync(`${full}.example`)) full = `${full}.example`;
    assert.ok(existsSync(full), `env_file ${file}: neither it nor ${file}.example exists`);
    Object.assign(env, parseEnvFile(full));
  }
  Object.assign(env, explicitEnv(service));
  return env;
}

function explicitEnv(service) {
  const env = {};
  const e = service.environment;
  if (Array.isArray(e)) {
    for (const item of e) {
      const eq = item.indexOf('=');
      env[eq < 0 ? item : item.slice(0, eq)] = eq < 0 ? undefined : item.slice(eq + 1);
    }
  } else if (isPlainObject(e)) {
    for (const [k, v] of Object.entries(e)) env[k] = v === null ? undefined : String(v);
  }
  return env;
}

function int(value, name) {
  const n = Number.parseInt(value, 10);
  assert.ok(Number.isInteger(n) && String(n) === String(value).trim(), `${name} is not an integer: ${value}`);
  return n;
}

function composeNodeSettings(name, env) {
  const get = (key, def) => (env[key] === undefined ? def : int(env[key], `${name} ${key}`));
  const bool = (key) => env[key] === undefined || env[key] === 'true';
  return {
    httpPort: get('CHORUS_HTTP_PORT', 7880),
    rtcPort: get('CHORUS_RTC_PORT', 7882),
    workers: env.CHORUS_WORKERS === undefined ? undefined : int(env.CHORUS_WORKERS, `${name} CHORUS_WORKERS`),
    rtcTcpPort: get('CHORUS_RTC_TCP_PORT', 7881),
    iceTcp: bool('CHORUS_ICE_TCP'),
    turn: bool('CHORUS_TURN'),
    turnPort: get('CHORUS_TURN_PORT', 3478),
    turnTcp: true,
  };
}

/** "130s", "2m10s", "1h" (Compose durations) → seconds. */
function durationSecs(text) {
  const re = /(\d+(?:\.\d+)?)(h|m|s|ms|us)/g;
  let total = 0;
  let matched = '';
  for (const m of String(text).matchAll(re)) {
    total += Number(m[1]) * { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6 }[m[2]];
    matched += m[0];
  }
  assert.equal(matched, String(text), `not a duration: ${text}`);
  return total;
}

/** A Compose volume entry (short or long syntax) → {source, target}, bind sources resolved against deploy/. */
function composeVolume(entry) {
  if (isPlainObject(entry)) {
    const bind = entry.type === 'bind';
    return { source: bind ? path.resolve(DEPLOY, entry.source) : entry.source, target: entry.target, bind };
  }
  const [source, target] = String(entry).split(':');
  const bind = source.startsWith('.') || source.startsWith('/');
  return { source: bind ? path.resolve(DEPLOY, source) : source, target, bind };
}

describe('deploy/docker-compose.yml', () => {
  test('has the five services', () => {
    const names = Object.keys(composeFile().services ?? {}).sort();
    assert.deepEqual(names, ['chorus-1', 'chorus-2', 'grafana', 'prometheus', 'redis']);
    assert.match(String(composeFile().services.redis.image), /^redis:7/);
  });

  test('both Chorus nodes are built from deploy/Dockerfile with the repository root as context', () => {
    for (const name of CHORUS_NODES) {
      const build = composeFile().services[name].build;
      assert.ok(isPlainObject(build), `${name}: no build section`);
      const context = path.resolve(DEPLOY, build.context);
      assert.equal(context, ROOT, `${name}: build context should be the repository root`);
      assert.equal(path.resolve(context, build.dockerfile ?? 'Dockerfile'), path.join(DEPLOY, 'Dockerfile'));
    }
  });

  test('both nodes point at the redis service and wait for it', () => {
    const services = composeFile().services;
    for (const name of CHORUS_NODES) {
      const env = serviceEnv(services[name]);
      assert.ok(env.CHORUS_REDIS_URL, `${name}: CHORUS_REDIS_URL is not set`);
      const url = new URL(env.CHORUS_REDIS_URL);
      assert.match(url.protocol, /^rediss?:$/, `${name}: not a redis URL: ${env.CHORUS_REDIS_URL}`);
      assert.equal(url.hostname, 'redis', `${name}: CHORUS_REDIS_URL should name the redis service`);
      assert.equal(url.port || '6379', '6379');
      const deps = services[name].depends_on;
      const depNames = Array.isArray(deps) ? deps : Object.keys(deps ?? {});
      assert.ok(depNames.includes('redis'), `${name}: depends_on lacks redis`);
    }
  });

  test('each node publishes exactly the ports its CHORUS_*_PORT settings make it listen on, 1:1', () => {
    const services = composeFile().services;
    const hostPortsSeen = new Map();
    for (const [name, service] of Object.entries(services)) {
      for (const entry of toArray(service.ports)) {
        for (const m of composePortMappings(entry)) {
          if (m.host === undefined) continue;
          const key = `${m.host}/${m.proto}`;
          assert.ok(!hostPortsSeen.has(key), `host port ${key} published by ${hostPortsSeen.get(key)} and ${name}`);
          hostPortsSeen.set(key, name);
        }
      }
    }
    for (const name of CHORUS_NODES) {
      const env = serviceEnv(services[name]);
      const expected = chorusListenPorts(composeNodeSettings(name, env), name);
      const published = new Set();
      for (const entry of toArray(services[name].ports)) {
        for (const m of composePortMappings(entry)) {
          // ICE candidates carry the port the node binds: the host port must be the same number.
          assert.equal(m.host, m.container, `${name}: ${entry} maps to a different host port`);
          published.add(`${m.container}/${m.proto}`);
        }
      }
      assert.deepEqual(sortedList(published), sortedList(expected), `${name}: published ports vs. the node's settings`);
    }
  });

  test('nodes have distinct ids, a node IP, and a stop grace period longer than their drain timeout', () => {
    const services = composeFile().services;
    const ids = new Set();
    for (const name of CHORUS_NODES) {
      const env = serviceEnv(services[name]);
      assert.ok(env.CHORUS_NODE_ID, `${name}: CHORUS_NODE_ID is not set`);
      ids.add(env.CHORUS_NODE_ID);
      assert.ok(env.CHORUS_NODE_IP, `${name}: CHORUS_NODE_IP is not set (env_file or environment)`);
      if (env.CHORUS_DRAIN_TIMEOUT_SECS !== undefined) {
        const drain = int(env.CHORUS_DRAIN_TIMEOUT_SECS, `${name} CHORUS_DRAIN_TIMEOUT_SECS`);
        assert.ok(services[name].stop_grace_period, `${name}: no stop_grace_period (Compose waits only 10 s)`);
        assert.ok(durationSecs(services[name].stop_grace_period) > drain, `${name}: stop_grace_period <= drain timeout`);
      }
    }
    assert.equal(ids.size, CHORUS_NODES.length, 'CHORUS_NODE_ID values are not distinct');
  });

  test('secrets come from the env file, whose committed template holds placeholders only', () => {
    const services = composeFile().services;
    const secrets = ['CHORUS_API_KEY', 'CHORUS_API_SECRET', 'CHORUS_TURN_SECRET'];
    for (const name of CHORUS_NODES) {
      const inline = explicitEnv(services[name]);
      for (const key of secrets) assert.ok(!(key in inline), `${name}: ${key} is set inline; it belongs in chorus.env`);
      assert.deepEqual(toArray(services[name].env_file).map((e) => (typeof e === 'string' ? e : e.path)), ['chorus.env']);
    }
    const template = parseEnvFile(path.join(DEPLOY, 'chorus.env.example'));
    for (const key of secrets) assert.ok(key in template, `chorus.env.example lacks ${key}`);
    for (const key of ['CHORUS_API_SECRET', 'CHORUS_TURN_SECRET'])
      assert.match(template[key], /CHANGE-ME/, `chorus.env.example: ${key} must be a CHANGE-ME placeholder`);
    assert.match(read(path.join(DEPLOY, '.gitignore')), /^\/?chorus\.env$/m, 'deploy/.gitignore must ignore chorus.env');
    assert.match(read(path.join(ROOT, '.dockerignore')), /^deploy\/chorus\.env$/m, '.dockerignore must exclude deploy/chorus.env');
  });

  test('Prometheus scrapes both nodes at their HTTP ports', () => {
    const services = composeFile().services;
    const volumes = toArray(services.prometheus.volumes).map(composeVolume);
    const config = volumes.find((v) => v.target === '/etc/prometheus/prometheus.yml');
    assert.ok(config, 'prometheus: no volume at /etc/prometheus/prometheus.yml');
    assert.equal(config.source, path.join(DEPLOY, 'prometheus', 'prometheus.yml'));
    const prom = yamlOne(config.source);
    const scraped = new Set();
    for (const job of toArray(prom.scrape_configs)) {
      assert.ok(job.metrics_path === undefined || job.metrics_path === '/metrics', `${job.job_name}: metrics_path`);
      for (const sc of toArray(job.static_configs)) for (const t of toArray(sc.targets)) scraped.add(t);
    }
    for (const name of CHORUS_NODES) {
      const { httpPort } = composeNodeSettings(name, serviceEnv(services[name]));
      assert.ok(scraped.has(`${name}:${httpPort}`), `prometheus does not scrape ${name}:${httpPort} (has ${[...scraped]})`);
    }
  });

  test('Grafana is provisioned with the Prometheus data source and the existing dashboard deploy/grafana/chorus.json', () => {
    const services = composeFile().services;
    const volumes = toArray(services.grafana.volumes).map(composeVolume);
    const prov = volumes.find((v) => v.target === '/etc/grafana/provisioning');
    assert.ok(prov, 'grafana: provisioning is not mounted at /etc/grafana/provisioning');
    assert.equal(prov.source, path.join(DEPLOY, 'grafana', 'provisioning'));

    const dsDir = path.join(prov.source, 'datasources');
    const datasources = readdirSync(dsDir)
      .filter((f) => /\.ya?ml$/.test(f))
      .flatMap((f) => toArray(yamlOne(path.join(dsDir, f)).datasources));
    const prometheus = datasources.filter((d) => d.type === 'prometheus');
    assert.equal(prometheus.length, 1, 'expected one Prometheus data source');
    const dsUrl = new URL(prometheus[0].url);
    assert.equal(dsUrl.hostname, 'prometheus', 'the data source should be the prometheus service');
    assert.equal(dsUrl.port, '9090');

    const dbDir = path.join(prov.source, 'dashboards');
    const providers = readdirSync(dbDir)
      .filter((f) => /\.ya?ml$/.test(f))
      .flatMap((f) => toArray(yamlOne(path.join(dbDir, f)).providers));
    assert.ok(providers.length > 0, 'no dashboard provider');
    const dashboard = path.join(DEPLOY, 'grafana', 'chorus.json');
    const found = providers.some((p) => {
      const dir = p.options?.path;
      return volumes.some((v) => {
        if (!v.bind) return false;
        if (v.source === dashboard) return path.posix.dirname(v.target) === dir || v.target === dir;
        return v.source === path.dirname(dashboard) && v.target === dir;
      });
    });
    assert.ok(found, 'no dashboard provider path has deploy/grafana/chorus.json mounted in it');
    const json = JSON.parse(read(dashboard));
    assert.ok(json.uid && Array.isArray(json.panels) && json.panels.length > 0, 'chorus.json is not a dashboard');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Dockerfile

/** Instructions of a Dockerfile: comments dropped, continuation lines joined. */
function dockerInstructions(text) {
  const out = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (current === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    const m = /^(\w+)\s+([\s\S]*)$/.exec(current.trim());
    if (m) out.push({ op: m[1].toUpperCase(), args: m[2].trim() });
    current = '';
  }
  return out;
}

describe('deploy/Dockerfile', () => {
  const dockerfile = path.join(DEPLOY, 'Dockerfile');
  const instructions = () => dockerInstructions(read(dockerfile));
  const finalStage = () => {
    const all = instructions();
    const lastFrom = all.map((i) => i.op).lastIndexOf('FROM');
    return all.slice(lastFrom);
  };

  test('is multi-stage: a rust:1-bookworm build, a debian:bookworm-slim runtime', () => {
    const froms = instructions().filter((i) => i.op === 'FROM');
    assert.ok(froms.length >= 2, `${froms.length} FROM stage(s)`);
    const build = /^rust:1-bookworm\s+AS\s+(\S+)$/i.exec(froms[0].args);
    assert.ok(build, `first stage: ${froms[0].args}`);
    assert.match(froms.at(-1).args, /^debian:bookworm-slim\b/);
    const copies = finalStage().filter((i) => i.op === 'COPY' && i.args.includes(`--from=${build[1]}`));
    assert.ok(copies.length > 0, 'the runtime stage copies nothing from the build stage');
    const runs = instructions().filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    assert.match(runs, /cargo build --release --locked -p chorus-signaling/);
    assert.match(runs, /target\/release\/chorus\b/);
  });

  test('exposes HTTP, ICE-TCP, media and TURN ports', () => {
    const exposed = new Set();
    for (const i of instructions().filter((x) => x.op === 'EXPOSE')) {
      for (const spec of i.args.split(/\s+/)) {
        const [ports, proto = 'tcp'] = spec.split('/');
        for (const p of portRange(ports)) exposed.add(`${p}/${proto}`);
      }
    }
    for (const p of ['7880/tcp', '7881/tcp', '7882/udp', '3478/udp', '3478/tcp'])
      assert.ok(exposed.has(p), `EXPOSE lacks ${p} (has ${sortedList(exposed)})`);
  });

  test('runs `chorus serve` as a non-root user, with a /healthz healthcheck and a data volume', () => {
    const stage = finalStage();
    const one = (op) => {
      const found = stage.filter((i) => i.op === op);
      assert.equal(found.length, 1, `runtime stage: expected one ${op}`);
      return found[0].args;
    };
    assert.deepEqual(JSON.parse(one('ENTRYPOINT')), ['chorus']);
    assert.deepEqual(JSON.parse(one('CMD')), ['serve']);
    const user = one('USER');
    assert.ok(!/^(root|0)(:|$)/.test(user), `USER ${user}`);
    const health = one('HEALTHCHECK');
    assert.match(health, /http:\/\/127\.0\.0\.1:(7880|\$\{CHORUS_HTTP_PORT:-7880\})\/healthz/);
    const installs = stage.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    assert.match(installs, /apt-get install[^\n]*\bca-certificates\b/, 'runtime stage lacks ca-certificates');
    const tool = /CMD\s+(\S+)/.exec(health)?.[1];
    if (tool === 'curl') assert.match(installs, /apt-get install[^\n]*\bcurl\b/, 'HEALTHCHECK uses curl, which is not installed');
    assert.match(one('VOLUME'), /\/var\/lib\/chorus/);
  });

  test('the build context (repository root) has a .dockerignore for target/, .git/, node_modules/, .chorus/', () => {
    const lines = read(path.join(ROOT, '.dockerignore'))
      .split('\n')
      .map((l) => l.trim().replace(/\/$/, ''));
    for (const want of ['target', '.git', '**/node_modules', '**/.chorus'])
      assert.ok(lines.includes(want) || lines.includes(want.replace('**/', '')), `.dockerignore lacks ${want}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes

function k8sObjects() {
  const objects = [];
  for (const file of readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')) {
    for (const value of yamlValues(path.join(K8S, file))) objects.push({ ...value, __file: file });
  }
  return objects;
}

const byKind = (objects, kind) => objects.filter((o) => o.kind === kind);

function chorusWorkload(objects) {
  const workloads = objects.filter(
    (o) => (o.kind === 'StatefulSet' || o.kind === 'Deployment') && o.spec?.template?.spec?.containers?.some((c) => c.name === 'chorus'),
  );
  assert.equal(workloads.length, 1, 'expected one StatefulSet/Deployment with a container named chorus');
  const workload = workloads[0];
  const container = workload.spec.template.spec.containers.find((c) => c.name === 'chorus');
  return { workload, pod: workload.spec.template.spec, labels: workload.spec.template.metadata?.labels ?? {}, container };
}

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

// ---------------------------------------------------------------------------------------------------------------
// Every flag and CHORUS_* variable in deploy/ exists in the built server's --help

const CHORUS_BIN = process.env.CHORUS_BIN ? path.resolve(process.env.CHORUS_BIN) : path.join(ROOT, 'target', 'ci', 'chorus');

function help(subcommand) {
  const r = spawnSync(CHORUS_BIN, [subcommand, '--help'], { encoding: 'utf8', timeout: 20_000 });
  if (r.error) return { ok: false, why: String(r.error), flags: new Set(), envs: new Set() };
  const text = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) {
    const why = `\`chorus ${subcommand} --help\` exited ${r.status}: ${text.trim().split('\n')[0]}`;
    return { ok: false, why, flags: new Set(), envs: new Set() };
  }
  const flags = new Set(['--help']);
  for (const m of text.matchAll(/^\s*(?:-[A-Za-z],\s*)?(--[a-z0-9][a-z0-9-]*)/gm)) flags.add(m[1]);
  const envs = new Set([...text.matchAll(/\[env:\s*([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]));
  return { ok: true, flags, envs };
}

/**
 * Where deploy/ uses the server's flags: [{file, line, sub, flag}], sub = serve, drain, token, or any (a flag named
 * on its own in Markdown, which must exist for serve or drain).
 *   - command lines in any text file: `chorus [serve|drain|token] --flag ...` (also in comments and in JSON or YAML
 *     arrays), up to a shell separator; `chorus` must be the bare word or a path ending in bin/, release/ or ci/;
 *   - Markdown inline code that starts with a flag: `--node-id`;
 *   - Compose `command:` of the Chorus services and the Kubernetes container args and preStop command (YAML lists
 *     spread over several lines, which the line scan cannot see).
 */
function flagUses() {
  const uses = [];
  const commandRe = /(?:^|[\s;&|(=$])(?:\S*\/(?:bin|release|ci|debug)\/)?chorus\s+(?=(serve|drain|token)\b|--)/g;
  for (const file of DEPLOY_FILES.filter((f) => !f.endsWith('.json'))) {
    const lines = read(file).split('\n');
    for (let i = 0; i < lines.length; i++) {
      const start = i;
      let logical = lines[i];
      while (/\\\s*$/.test(logical) && i + 1 < lines.length) logical = logical.replace(/\\\s*$/, ' ') + lines[++i];
      const normalized = logical.replace(/[`]/g, ' ; ').replace(/["'[\],]/g, ' ');
      for (const m of normalized.matchAll(commandRe)) {
        const tokens = normalized.slice(m.index + m[0].length).trim().split(/\s+/);
        let sub = 'serve';
        if (['serve', 'drain', 'token'].includes(tokens[0])) sub = tokens.shift();
        for (const token of tokens) {
          if (['|', '||', '&&', ';', '#', ')', '&'].includes(token) || token.startsWith('#')) break;
          if (/^--[a-z]/.test(token)) uses.push({ file: rel(file), line: start + 1, sub, flag: token.split('=')[0] });
        }
      }
      if (file.endsWith('.md')) {
        for (const m of logical.matchAll(/`(--[a-z][a-z0-9-]*)[^`]*`/g))
          uses.push({ file: rel(file), line: start + 1, sub: 'any', flag: m[1] });
      }
    }
  }
  const addArgs = (file, sub, args) => {
    for (const a of toArray(args).map(String))
      if (/^--[a-z]/.test(a)) uses.push({ file, line: 0, sub, flag: a.split('=')[0] });
  };
  const compose = composeFile();
  for (const name of CHORUS_NODES) {
    const cmd = toArray(compose.services[name].command).map(String);
    addArgs('deploy/docker-compose.yml', cmd[0] === 'drain' || cmd[0] === 'token' ? cmd[0] : 'serve', cmd);
  }
  const { container } = chorusWorkload(k8sObjects());
  const args = [...toArray(container.command), ...toArray(container.args)].map(String);
  addArgs('deploy/kubernetes', args.includes('drain') ? 'drain' : 'serve', args);
  const preStop = toArray(container.lifecycle?.preStop?.exec?.command).map(String);
  addArgs('deploy/kubernetes (preStop)', preStop.includes('drain') ? 'drain' : 'serve', preStop);
  return uses;
}

/** Every CHORUS_* name in deploy/ (any file but the dashboard JSON): [{file, line, name}]. */
function envUses() {
  const uses = [];
  for (const file of DEPLOY_FILES.filter((f) => !f.endsWith('.json'))) {
    read(file)
      .split('\n')
      .forEach((text, i) => {
        for (const m of text.matchAll(/\bCHORUS_[A-Z0-9_]*[A-Z0-9]\b/g)) uses.push({ file: rel(file), line: i + 1, name: m[0] });
      });
  }
  return uses;
}

const binName = rel(CHORUS_BIN).startsWith('..') ? CHORUS_BIN : rel(CHORUS_BIN);

describe(`deploy/ against the server's --help (${binName})`, () => {
  const binaryPresent = () =>
    assert.ok(
      existsSync(CHORUS_BIN),
      `the server binary ${CHORUS_BIN} does not exist: build it (cargo build --profile ci -p chorus-signaling) or set CHORUS_BIN`,
    );
  const where = (u) => `${u.file}${u.line ? `:${u.line}` : ''}`;

  test('every CHORUS_* variable is one the server reads', () => {
    binaryPresent();
    const serve = help('serve');
    assert.ok(serve.ok, serve.why);
    const drain = help('drain');
    const known = new Set([...serve.envs, ...drain.envs]);
    const unknown = envUses().filter((u) => !known.has(u.name));
    const names = [...new Set(unknown.map((u) => u.name))];
    assert.deepEqual(
      names,
      [],
      `not in \`chorus serve --help\`${drain.ok ? ' or `chorus drain --help`' : ''}:\n` +
        unknown.map((u) => `  ${where(u)}: ${u.name}`).join('\n'),
    );
  });

  test('every --flag of a chorus command line is one of that subcommand', () => {
    binaryPresent();
    const helps = { serve: help('serve'), drain: help('drain'), token: help('token') };
    assert.ok(helps.serve.ok, helps.serve.why);
    const problems = [];
    for (const u of flagUses()) {
      const subs = u.sub === 'any' ? ['serve', 'drain'] : [u.sub];
      if (subs.some((s) => helps[s].flags.has(u.flag))) continue;
      const why = subs.filter((s) => !helps[s].ok).map((s) => ` (${helps[s].why})`).join('');
      problems.push(`  ${where(u)}: ${u.flag} is not a flag of chorus ${subs.join(' or ')}${why}`);
    }
    assert.deepEqual(problems, [], `unknown flags:\n${problems.join('\n')}`);
  });

  test('the flag scan sees the commands it is meant to check', () => {
    const uses = flagUses();
    assert.ok(uses.some((u) => u.sub === 'drain' && u.flag === '--wait'), 'the preStop `chorus drain --wait` was not found');
    assert.ok(uses.some((u) => u.sub === 'serve' && u.flag === '--config'), '`serve --config` was not found');
    assert.ok(envUses().some((u) => u.name === 'CHORUS_REDIS_URL'), 'CHORUS_REDIS_URL was not found');
  });
});
