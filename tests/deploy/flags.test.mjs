// Every flag and CHORUS_* variable used under deploy/ exists in the built server's --help (CHORUS_BIN, default
// target/ci/chorus), so a renamed flag breaks the build here instead of a deployment.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

import {
  ROOT,
  rel,
  read,
  DEPLOY_FILES,
  toArray,
  CHORUS_NODES,
  composeFile,
  k8sObjects,
  chorusWorkload,
} from './support.mjs';


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
