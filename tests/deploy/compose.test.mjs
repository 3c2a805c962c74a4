// Static checks of deploy/docker-compose.yml: services, ports, volumes and settings in step with each other and
// with config/chorus.sample.toml.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

import {
  ROOT,
  DEPLOY,
  read,
  yamlOne,
  parseEnvFile,
  isPlainObject,
  toArray,
  composePortMappings,
  chorusListenPorts,
  sortedList,
  CHORUS_NODES,
  composeFile,
  int,
} from './support.mjs';



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
