// Connectivity fallbacks in headless Chromium (see docs/connectivity.md):
//  1. tabs with iceTransportPolicy 'relay' (`&relay=1`) send and receive media through the embedded TURN, one
//     pinned to TURN over UDP, one to TURN over TCP and one to TURN over TLS (`turns:`, with the Rust TURN tests'
//     certificate, whose key Chromium is told to accept);
//  2. the same with credentials that expired (correctly signed) never connects;
//  3. with UDP to the media port dropped by a firewall rule (nftables in a network namespace of our own), two
//     tabs connect over ICE-TCP and media flows (TURN off, so nothing else could carry it);
//  4. with everything to the media ports dropped for a while (an outage, or a network change), the server ends
//     both sessions (`mediaFailed`) and each tab joins again by itself (the SDK's `recoverMedia`): media flows
//     again once the path is back.
// Everything runs on loopback. As root, one network namespace holds Chromium and both servers; without root
// (or without nft) tests 1-2 run on the host loopback and tests 3-4 print a loud SKIP.
// At most two tabs are open at a time.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Browser, ChorusServer, events, freeTcpPort, repoRoot, stats, waitFor, withDiagnostics } from './harness.mjs';

const TURN_SECRET = 'connectivity-test-secret-0123456789';
const ns = `chorus-conn-${process.pid}`;

function have(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Creates our namespace (loopback only) or says why it cannot. */
function makeNamespace() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not running as root';
  if (!have('ip') || !have('nft')) return 'ip or nft missing (scripts/test.sh installs nftables as root)';
  try {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return null;
  } catch (err) {
    return `cannot create a network namespace: ${err.message}`;
  }
}

/**
 * The TURN/TLS certificate and key the Rust TURN tests use (a leaf for 127.0.0.1 and localhost under the test CA
 * in `signaling/tests/server/data`), and the base64 SHA-256 of its public key, which Chromium is told to accept
 * (`--ignore-certificate-errors-spki-list`: that key only, every other check still runs).
 */
function testCertificate() {
  const dir = path.join(repoRoot, 'signaling', 'tests', 'server', 'data');
  const cert = path.join(dir, 'turn-test-cert.pem');
  const key = path.join(dir, 'turn-test-key.pem');
  const spki = crypto.createPublicKey(fs.readFileSync(key)).export({ type: 'spki', format: 'der' });
  return { cert, key, spkiHash: crypto.createHash('sha256').update(spki).digest('base64') };
}

/** Drops UDP to `port` inside our namespace, both directions on its loopback. */
function blockUdp(port) {
  const rules = `table inet chorus_test {
  chain in { type filter hook input priority 0; udp dport ${port} drop; }
  chain out { type filter hook output priority 0; udp dport ${port} drop; }
}`;
  execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: rules });
}

/** Drops everything sent to `server`'s media ports (UDP and ICE-TCP) inside our namespace, until `unblockMedia`. */
function blockMedia(server) {
  const drop = `udp dport ${server.rtcPort} drop; tcp dport ${server.rtcTcpPort} drop;`;
  const rules = `table inet chorus_outage {
  chain in { type filter hook input priority 0; ${drop} }
  chain out { type filter hook output priority 0; ${drop} }
}`;
  execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: rules });
}

function unblockMedia() {
  execFileSync('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'chorus_outage']);
}

/** Waits until `entry` decodes video from `identity` and the frame count keeps growing. */
async function assertReceives(entry, identity, what) {
  let first = 0;
  await waitFor(
    async () => {
      const s = (await stats(entry))[identity];
      if (!s || !(s.videoFramesDecoded > 0)) throw new Error(`${entry.label}<-${identity}: ${JSON.stringify(s)}`);
      first = s.videoFramesDecoded;
      return true;
    },
    { timeoutMs: 30000, intervalMs: 1000, what: `${what}: ${entry.label} decodes ${identity}` },
  );
  await waitFor(async () => (await stats(entry))[identity]?.videoFramesDecoded > first + 10, {
    timeoutMs: 10000,
    intervalMs: 500,
    what: `${what}: ${entry.label} keeps decoding ${identity}`,
  });
}

/**
 * Rewrites the `joined` message `entry` receives: `edit(iceServers)` returns the servers the page sees. Call it
 * before the page navigates to the room.
 */
async function rewriteIceServers(entry, edit) {
  await entry.page.routeWebSocket(/\/rtc/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((text) => {
      const msg = JSON.parse(text);
      if (msg.type === 'joined') msg.iceServers = edit(msg.iceServers);
      ws.send(JSON.stringify(msg));
    });
  });
}

/**
 * Keeps only the TURN URLs of `transport` (Chromium would otherwise pick between them): `udp` and `tcp` are
 * `turn:` URLs with that transport, `tls` the `turns:` ones.
 */
function onlyTurnTransport(transport) {
  const keep = (u) =>
    transport === 'tls' ? u.startsWith('turns:') : u.startsWith('turn:') && u.endsWith(`transport=${transport}`);
  return (servers) =>
    servers.map((s) => ({ ...s, urls: [s.urls].flat().filter(keep) })).filter((s) => s.urls.length > 0);
}

/** Opens a relay-only tab that may use only TURN over `transport`, and checks it relays that way both ways. */
async function assertRelaysOver(browser, label, url, transport) {
  const entry = await browser.open(label, 'about:blank');
  await rewriteIceServers(entry, onlyTurnTransport(transport));
  await entry.page.goto(url);
  await assertReceives(entry, 'alice', `relay over ${transport}`);
  await waitFor(
    async () => {
      const p = await paths(entry);
      return p.publisher?.path === 'relay' && p.subscriber?.path === 'relay';
    },
    { timeoutMs: 10000, what: `${label} to report relay paths` },
  );
  const p = await paths(entry);
  console.log(`${label} (relay over ${transport}): ${p.publisher.local} -> ${p.publisher.remote}`);
  assert.equal(p.publisher.relayProtocol, transport, `${label} publisher: ${JSON.stringify(p.publisher)}`);
  assert.equal(p.subscriber.relayProtocol, transport, `${label} subscriber: ${JSON.stringify(p.subscriber)}`);
  return entry;
}

async function paths(entry) {
  return entry.page.evaluate(() => window.chorusPath);
}

async function closePage(entry) {
  await entry.context.close().catch(() => {});
}

describe('connectivity', { timeout: 360000 }, () => {
  const nsProblem = makeNamespace();
  const wrap = nsProblem ? [] : ['ip', 'netns', 'exec', ns];
  const tls = testCertificate();
  const relayServer = new ChorusServer({
    wrap,
    extraArgs: ['--turn-secret', TURN_SECRET, '--turn-tls-cert', tls.cert, '--turn-tls-key', tls.key],
  });
  const browser = new Browser();
  let tcpServer = null;
  let recoveryServer = null;

  before(async () => {
    if (nsProblem) console.log(`note: no network namespace (${nsProblem}); relay tests run on the host loopback`);
    relayServer.extraArgs.push('--turn-tls-port', String(await freeTcpPort()));
    await relayServer.start();
    // The test CA is not a public root; Chromium checks TURN/TLS certificates (without this flag it refuses the
    // test's), as it would a deployment's.
    await browser.launch({ wrap, extraArgs: [`--ignore-certificate-errors-spki-list=${tls.spkiHash}`] });
  });

  after(async () => {
    await browser.close();
    await relayServer.stop();
    if (tcpServer) await tcpServer.stop();
    if (recoveryServer) await recoveryServer.stop();
    if (!nsProblem) {
      try {
        execFileSync('ip', ['netns', 'del', ns]);
      } catch (err) {
        console.log(`warning: could not delete namespace ${ns}: ${err.message}`);
      }
    }
  });

  it('relay-only tabs send and receive media through the embedded TURN over UDP, TCP and TLS; expired credentials are refused', async () => {
    const room = `relay-${Date.now().toString(36)}`;
    const url = (id, extra = '') => `${relayServer.baseUrl}/?room=${room}&identity=${id}&debug=1${extra}`;
    await withDiagnostics('relay', { server: relayServer, browser }, async () => {
      const alice = await browser.open('alice', url('alice'));
      // Bob may relay only over UDP, dave only over TCP, erin only over TLS: each pins one TURN transport
      // Chromium would otherwise choose between by timing.
      const bob = await assertRelaysOver(browser, 'bob', url('bob', '&relay=1'), 'udp');
      await assertReceives(alice, 'bob', 'relay over udp');
      const a = await paths(alice);
      assert.notEqual(a.publisher?.path, 'relay', 'alice was not asked to relay');
      await closePage(bob);
      const dave = await assertRelaysOver(browser, 'dave', url('dave', '&relay=1'), 'tcp');
      await assertReceives(alice, 'dave', 'relay over tcp');
      await closePage(dave);
      const erin = await assertRelaysOver(browser, 'erin', url('erin', '&relay=1'), 'tls');
      await assertReceives(alice, 'erin', 'relay over tls');
      await closePage(erin);

      // Carol gets credentials whose expiry has passed, correctly signed, so only the expiry check refuses them.
      const carol = await browser.open('carol', 'about:blank');
      const username = `${Math.floor(Date.now() / 1000) - 60}:expired`;
      const credential = crypto.createHmac('sha1', TURN_SECRET).update(username).digest('base64');
      await rewriteIceServers(carol, (servers) => servers.map((s) => ({ ...s, username, credential })));
      await carol.page.goto(url('carol', '&relay=1'));
      await waitFor(async () => (await carol.page.evaluate(() => window.chorusState)) === 'connected', {
        timeoutMs: 15000,
        what: 'carol to join (signaling)',
      });
      await sleep(10000);
      const c = await paths(carol);
      assert.equal(c.publisher, null, `carol's publisher must not connect: ${JSON.stringify(c.publisher)}`);
      assert.equal(c.subscriber, null, `carol's subscriber must not connect: ${JSON.stringify(c.subscriber)}`);
      assert.ok(!(await stats(carol)).alice?.videoFramesDecoded, 'carol must not receive media');
      assert.match(relayServer.log.text(), /TURN credentials refused.*expired/);
      await closePage(carol);
      await closePage(alice);
    });
  });

  it('with UDP to the media port blocked, two tabs connect over ICE-TCP', async (t) => {
    if (nsProblem) {
      console.log(`\n*** SKIP ICE-TCP test: ${nsProblem} ***\n`);
      t.skip(nsProblem);
      return;
    }
    tcpServer = new ChorusServer({ wrap, extraArgs: ['--turn', 'false'] });
    await tcpServer.start();
    blockUdp(tcpServer.rtcPort);
    const room = `tcp-${Date.now().toString(36)}`;
    const url = (id) => `${tcpServer.baseUrl}/?room=${room}&identity=${id}&debug=1`;
    await withDiagnostics('ice-tcp', { server: tcpServer, browser }, async () => {
      const alice = await browser.open('alice', url('alice'));
      const bob = await browser.open('bob', url('bob'));
      await assertReceives(bob, 'alice', 'ICE-TCP');
      await assertReceives(alice, 'bob', 'ICE-TCP');
      for (const entry of [alice, bob]) {
        const p = await paths(entry);
        assert.equal(p.publisher?.path, 'tcp', `${entry.label} publisher: ${JSON.stringify(p.publisher)}`);
        assert.equal(p.subscriber?.path, 'tcp', `${entry.label} subscriber: ${JSON.stringify(p.subscriber)}`);
      }
      const p = await paths(alice);
      console.log(`ICE-TCP: alice ${p.publisher.local} -> ${p.publisher.remote}`);
      await closePage(alice);
      await closePage(bob);
    });
  });
  it('when the media path fails, the server ends the sessions (mediaFailed) and both tabs join again by themselves once it is back', async (t) => {
    if (nsProblem) {
      console.log(`\n*** SKIP media recovery test: ${nsProblem} ***\n`);
      t.skip(nsProblem);
      return;
    }
    recoveryServer = new ChorusServer({ wrap, extraArgs: ['--turn', 'false'] });
    await recoveryServer.start();
    const room = `recover-${Date.now().toString(36)}`;
    const url = (id) => `${recoveryServer.baseUrl}/?room=${room}&identity=${id}&debug=1`;
    await withDiagnostics('media-recovery', { server: recoveryServer, browser }, async () => {
      const alice = await browser.open('alice', url('alice'));
      const bob = await browser.open('bob', url('bob'));
      await assertReceives(bob, 'alice', 'before the outage');
      await assertReceives(alice, 'bob', 'before the outage');
      // The outage: nothing reaches the media ports (UDP, and ICE-TCP so that it cannot take over). Signaling
      // stays up, so each tab hears `left {reason: mediaFailed}` once the server gives its connections up.
      const cutAt = Date.now();
      blockMedia(recoveryServer);
      try {
        for (const entry of [alice, bob]) {
          await waitFor(
            async () => (await events(entry)).some((e) => e.type === 'reconnecting' && e.t > cutAt),
            { timeoutMs: 45000, intervalMs: 500, what: `${entry.label} to lose its session (mediaFailed)` },
          );
        }
      } finally {
        unblockMedia();
      }
      console.log(`media recovery: both sessions ended ${((Date.now() - cutAt) / 1000).toFixed(1)} s after the cut`);
      for (const entry of [alice, bob]) {
        await waitFor(
          async () => (await events(entry)).some((e) => e.type === 'reconnected' && e.rejoined && e.t > cutAt),
          { timeoutMs: 30000, intervalMs: 500, what: `${entry.label} to join again` },
        );
      }
      await assertReceives(bob, 'alice', 'after the outage');
      await assertReceives(alice, 'bob', 'after the outage');
      for (const entry of [alice, bob]) {
        const after = (await events(entry)).filter((e) => e.t > cutAt).map((e) => e.type);
        assert.ok(!after.includes('disconnected'), `${entry.label} must not end: ${after.join(', ')}`);
        assert.equal(await entry.page.evaluate(() => window.chorusState), 'connected');
      }
      assert.match(recoveryServer.log.text(), /media failed/);
      console.log(`media recovery: media flows again ${((Date.now() - cutAt) / 1000).toFixed(1)} s after the cut`);
      await closePage(alice);
      await closePage(bob);
    });
  });
});
