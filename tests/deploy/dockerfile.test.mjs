// Static checks of deploy/Dockerfile.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import {
  ROOT,
  DEPLOY,
  read,
  portRange,
  sortedList,
} from './support.mjs';


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
