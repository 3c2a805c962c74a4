// Helpers for the browser end-to-end tests: start a Chorus server on free loopback ports, launch
// headless Chromium with fake media devices, open demo pages, poll, and dump diagnostics on failure.
//
// Environment:
//   CHORUS_BIN        server binary (default: target/release/chorus at the repository root)
//   CHORUS_ARGS       extra arguments appended to `chorus serve ...` (split on spaces)
//   CHROMIUM          browser binary (default: /usr/bin/chromium); never downloaded
//   CHORUS_E2E_DEBUG  1 = always print server and page logs, not only on failure
//   CHORUS_E2E_WEB_FROM_DISK  1 = serve /, /demo.js, /demo.css and /sdk/<file> from web/ in this checkout
//                     instead of the copies compiled into the server (to iterate on the SDK without a rebuild)

import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
const verbose = process.env.CHORUS_E2E_DEBUG === '1';

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

/** Keeps the last `max` lines of a stream of text. */
class LineBuffer {
  constructor(max = 600) {
    this.max = max;
    this.lines = [];
    this.partial = '';
  }

  push(chunk) {
    const text = this.partial + chunk;
    const parts = text.split('\n');
    this.partial = parts.pop();
    for (const line of parts) {
      this.lines.push(line);
      if (this.lines.length > this.max) this.lines.shift();
    }
  }

  text() {
    return [...this.lines, this.partial].filter(Boolean).join('\n');
  }
}

export async function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns a truthy value; throws with the last value/error after `timeoutMs`. */
export async function waitFor(fn, { timeoutMs = 30000, intervalMs = 500, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.stack : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${detail}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * A Chorus server on free loopback ports with a fresh data dir, in dev mode. `extraArgs` are appended to
 * `chorus serve ...`; `wrap` prefixes the command (e.g. `['ip', 'netns', 'exec', ns]`), in which case
 * readiness is read from the server log, since this process may not reach the server's loopback.
 */
export class ChorusServer {
  /** `env`: extra environment variables for the server (e.g. `CHORUS_API_SECRET`). */
  constructor({ extraArgs = [], wrap = [], env = {} } = {}) {
    this.extraArgs = extraArgs;
    this.wrap = wrap;
    this.env = env;
    this.log = new LineBuffer();
    this.proc = null;
    this.exited = null;
  }

  async start() {
    const bin = path.resolve(repoRoot, process.env.CHORUS_BIN || 'target/release/chorus');
    if (!fs.existsSync(bin)) throw new Error(`server binary ${bin} not found (build it, or set CHORUS_BIN)`);
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chorus-e2e-data-'));
    this.httpPort = await freeTcpPort();
    this.rtcPort = await freeUdpPort();
    // ICE-TCP and the embedded TURN server (UDP and TCP on one port) get free ports too, so that test files
    // running in parallel never collide on the defaults.
    this.rtcTcpPort = await freeTcpPort();
    this.turnPort = await freeTcpPort();
    const args = [
      'serve',
      '--data-dir',
      this.dataDir,
      '--http-port',
      String(this.httpPort),
      '--rtc-port',
      String(this.rtcPort),
      '--node-ip',
      '127.0.0.1',
      '--workers',
      '1',
      '--rtc-tcp-port',
      String(this.rtcTcpPort),
      '--turn-port',
      String(this.turnPort),
      ...this.extraArgs,
      ...(process.env.CHORUS_ARGS ? process.env.CHORUS_ARGS.split(' ').filter(Boolean) : []),
    ];
    this.command = `${bin} ${args.join(' ')}`;
    const env = {
      ...process.env,
      ...this.env,
      RUST_LOG: process.env.RUST_LOG || 'info',
      RUST_BACKTRACE: '1',
      NO_COLOR: '1',
    };
    const [cmd, ...cmdArgs] = [...this.wrap, bin, ...args];
    if (this.wrap.length) this.command = `${this.wrap.join(' ')} ${this.command}`;
    this.proc = spawn(cmd, cmdArgs, { cwd: this.dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.setEncoding('utf8');
    this.proc.stderr.setEncoding('utf8');
    this.proc.stdout.on('data', (d) => this.log.push(d));
    this.proc.stderr.on('data', (d) => this.log.push(d));
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
    this.exited.then(({ code, signal }) => {
      this.exitStatus = { code, signal };
      this.log.push(`\n[harness] server exited: code ${code} signal ${signal}\n`);
    });
    this.baseUrl = `http://127.0.0.1:${this.httpPort}`;
    await waitFor(
      async () => {
        if (this.exitStatus) throw new Error(`server exited early (${JSON.stringify(this.exitStatus)})`);
        if (this.wrap.length) return this.log.text().includes('signaling listening');
        const res = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
        return res.status === 200;
      },
      { timeoutMs: 30000, intervalMs: 200, what: `${this.baseUrl}/healthz` },
    ).catch((err) => {
      throw new Error(`${err.message}\n--- server (${this.command}) ---\n${this.log.text()}`);
    });
    return this;
  }

  /** A server-API token (`chorus token --admin`, signed with this server's dev keys). */
  adminToken() {
    const bin = path.resolve(repoRoot, process.env.CHORUS_BIN || 'target/release/chorus');
    return execFileSync(bin, ['token', '--admin', '--ttl', '10m', '--data-dir', this.dataDir], {
      encoding: 'utf8',
    }).trim();
  }

  /**
   * `method` (default GET) `route` under `/v1` with an admin token and `body` as JSON if given: `{status, body}`
   * (body parsed as JSON).
   */
  async api(route, { method = 'GET', body } = {}) {
    this._adminToken ||= this.adminToken();
    const headers = { authorization: `Bearer ${this._adminToken}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.baseUrl}/v1${route}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    return { status: res.status, body: await res.json() };
  }

  /** SIGKILL, as a crash would: no drain, no goodbye to the cluster. */
  async kill() {
    if (!this.proc || this.exitStatus) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async stop() {
    if (!this.proc || this.exitStatus) return;
    this.proc.kill('SIGTERM');
    const done = await Promise.race([this.exited, sleep(5000).then(() => null)]);
    if (!done) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** One headless Chromium; every page gets its own browser context (own origin storage). */
export class Browser {
  constructor() {
    this.pages = []; // {label, page, log: LineBuffer}
  }

  /** `wrap` prefixes the browser command, e.g. `['ip', 'netns', 'exec', ns]`; `extraArgs` are more flags. */
  async launch({ wrap = [], extraArgs = [] } = {}) {
    let executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
    if (!fs.existsSync(executablePath)) throw new Error(`${executablePath} not found: apt-get install -y chromium`);
    if (wrap.length) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chorus-e2e-chromium-'));
      const script = path.join(dir, 'chromium');
      const quote = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;
      fs.writeFileSync(script, `#!/bin/sh\nexec ${[...wrap, executablePath].map(quote).join(' ')} "$@"\n`, { mode: 0o755 });
      executablePath = script;
    }
    const args = [...CHROMIUM_FLAGS, ...extraArgs];
    // A page fulfilled by Playwright's router has no known address space, so Chrome's Local Network Access
    // checks would block its WebSocket to 127.0.0.1.
    if (process.env.CHORUS_E2E_WEB_FROM_DISK === '1') args.push('--disable-features=LocalNetworkAccessChecks');
    this.browser = await chromium.launch({ executablePath, headless: true, args });
    return this;
  }

  /** Opens `url` in a fresh context; console output and page errors go to the page's log. */
  async open(label, url) {
    const context = await this.browser.newContext({ viewport: { width: 960, height: 600 } });
    // Chrome gathers loopback candidates only for pages allowed to use the camera or microphone; a viewer
    // page (`&publish=0`) never asks, so allow it up front, as a user who granted it once would have.
    await context.grantPermissions(['camera', 'microphone']);
    if (process.env.CHORUS_E2E_WEB_FROM_DISK === '1') await serveWebFromDisk(context);
    const page = await context.newPage();
    const log = new LineBuffer(2000);
    const stamp = () => new Date().toISOString().slice(11, 23);
    page.on('console', (m) => log.push(`${stamp()} ${m.type()}: ${m.text()}\n`));
    page.on('pageerror', (e) => log.push(`${stamp()} pageerror: ${e.stack || e}\n`));
    page.on('crash', () => log.push(`${stamp()} PAGE CRASHED\n`));
    const entry = { label, page, context, log };
    this.pages.push(entry);
    await page.goto(url);
    return entry;
  }

  async close() {
    if (this.browser) await this.browser.close().catch(() => {});
  }
}

const WEB_FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/demo.js': ['demo.js', 'text/javascript; charset=utf-8'],
  '/demo.css': ['demo.css', 'text/css; charset=utf-8'],
};

/** The file under web/ and content type for a served path, or undefined. */
function webFile(pathname) {
  if (Object.hasOwn(WEB_FILES, pathname)) return WEB_FILES[pathname];
  const m = /^\/sdk\/([a-z]+\.js)$/.exec(pathname);
  return m ? [`sdk/${m[1]}`, 'text/javascript; charset=utf-8'] : undefined;
}

async function serveWebFromDisk(context) {
  await context.route(
    (url) => url.hostname === '127.0.0.1' && webFile(url.pathname) !== undefined,
    (route) => {
      const [file, contentType] = webFile(new URL(route.request().url()).pathname);
      route.fulfill({ contentType, body: fs.readFileSync(path.join(repoRoot, 'web', file), 'utf8') });
    },
  );
}

/**
 * Runs `fn`; if it throws, prints the server log, every page's console log, each page's
 * `chorusEvents` and `chorusStats()`, and saves screenshots, then rethrows.
 */
export async function withDiagnostics(name, { server, browser }, fn) {
  try {
    await fn();
    if (verbose) await dump(name, { server, browser }, null);
  } catch (err) {
    await dump(name, { server, browser }, err);
    throw err;
  }
}

async function dump(name, { server, browser }, err) {
  const out = [];
  out.push(`\n======== diagnostics for "${name}"${err ? ` (FAILED: ${err.message.split('\n')[0]})` : ''} ========`);
  if (server) out.push(`--- server: ${server.command}\n${server.log.text()}`);
  const shotDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chorus-e2e-shots-'));
  for (const { label, page, log } of browser ? browser.pages : []) {
    out.push(`--- page ${label} console ---\n${log.text()}`);
    if (page.isClosed()) continue;
    try {
      const state = await page.evaluate(async () => ({
        state: window.chorusState,
        error: window.chorusError,
        events: window.chorusEvents,
        stats: window.chorusStats ? await window.chorusStats() : null,
        local: window.chorusRoom ? await window.chorusRoom.getLocalStats() : null,
      }));
      out.push(`--- page ${label} state ---\n${JSON.stringify(state, null, 1)}`);
      const file = path.join(shotDir, `${label}.png`);
      await page.screenshot({ path: file });
      out.push(`(screenshot: ${file})`);
    } catch (e) {
      out.push(`(could not read page ${label}: ${e.message})`);
    }
  }
  out.push(`======== end of diagnostics for "${name}" ========\n`);
  process.stderr.write(`${out.join('\n')}\n`);
}

/** `chorusStats()` of a page, keyed by remote identity. */
export function stats(entry) {
  return entry.page.evaluate(() => window.chorusStats());
}

/** `chorusEvents` of a page. */
export function events(entry) {
  return entry.page.evaluate(() => window.chorusEvents);
}
