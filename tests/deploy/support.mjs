// Helpers shared by the deploy/ checks (`*.test.mjs` here): where the files are, loading YAML/TOML/env files,
// small object predicates, and the port arithmetic the Compose and Kubernetes checks share.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { parse as parseToml } from 'smol-toml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEPLOY = path.join(ROOT, 'deploy');
export const K8S = path.join(DEPLOY, 'kubernetes');
export const rel = (file) => path.relative(ROOT, file);
export const read = (file) => readFileSync(file, 'utf8');

// ---------------------------------------------------------------------------------------------------------------
// Loading

export function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    if (name === 'node_modules' || name === '.git') continue;
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...walk(full));
    else out.push(full);
  }
  return out;
}

export const DEPLOY_FILES = walk(DEPLOY);
export const YAML_FILES = DEPLOY_FILES.filter((f) => /\.ya?ml$/.test(f));

/** Every document of a YAML file, parsed with merge keys (`<<:`) as Compose reads them. */
export function yamlDocuments(file) {
  const docs = YAML.parseAllDocuments(read(file), { merge: true, prettyErrors: true });
  return Array.from(docs);
}

export function yamlValues(file) {
  return yamlDocuments(file)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${rel(file)}: ${doc.errors.map(String).join('; ')}`);
      return doc.toJS({ maxAliasCount: 1000 });
    })
    .filter((value) => value !== null && value !== undefined);
}

export function yamlOne(file) {
  const values = yamlValues(file);
  assert.equal(values.length, 1, `${rel(file)}: expected one YAML document, found ${values.length}`);
  return values[0];
}

/** KEY=VALUE lines of an env file (Compose `env_file`), comments and blank lines skipped. */
export function parseEnvFile(file) {
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

export const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);
export const toArray = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
export const subset = (small, big) => Object.entries(small ?? {}).every(([k, v]) => big?.[k] === v);
/** A non-empty label selector that matches these labels. */
export const selects = (selector, labels) => Object.keys(selector ?? {}).length > 0 && subset(selector, labels);

/** Dotted key paths of a parsed TOML value: tables and arrays of tables are walked, everything else is a leaf. */
export function tomlKeyPaths(value, prefix = '') {
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
export function sampleKeyPaths() {
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
export function portRange(text) {
  const [a, b] = String(text).split('-').map((n) => Number.parseInt(n, 10));
  assert.ok(Number.isInteger(a), `bad port: ${text}`);
  const end = b === undefined ? a : b;
  assert.ok(end >= a, `bad port range: ${text}`);
  return Array.from({ length: end - a + 1 }, (_, i) => a + i);
}

/** A Compose `ports:` entry (short or long syntax) → [{host, container, proto}]. */
export function composePortMappings(entry) {
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
export function chorusListenPorts(settings, where) {
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

export const sortedList = (set) => [...set].sort();

// ---------------------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------------------
// Docker Compose (also read by the flag and Kubernetes checks)

export const CHORUS_NODES = ['chorus-1', 'chorus-2'];

export function composeFile() {
  return yamlOne(path.join(DEPLOY, 'docker-compose.yml'));
}

export function int(value, name) {
  const n = Number.parseInt(value, 10);
  assert.ok(Number.isInteger(n) && String(n) === String(value).trim(), `${name} is not an integer: ${value}`);
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes (also read by the flag checks)

export function k8sObjects() {
  const objects = [];
  for (const file of readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')) {
    for (const value of yamlValues(path.join(K8S, file))) objects.push({ ...value, __file: file });
  }
  return objects;
}

export const byKind = (objects, kind) => objects.filter((o) => o.kind === kind);

export function chorusWorkload(objects) {
  const workloads = objects.filter(
    (o) => (o.kind === 'StatefulSet' || o.kind === 'Deployment') && o.spec?.template?.spec?.containers?.some((c) => c.name === 'chorus'),
  );
  assert.equal(workloads.length, 1, 'expected one StatefulSet/Deployment with a container named chorus');
  const workload = workloads[0];
  const container = workload.spec.template.spec.containers.find((c) => c.name === 'chorus');
  return { workload, pod: workload.spec.template.spec, labels: workload.spec.template.metadata?.labels ?? {}, container };
}
