// Cluster in the browser: two Chorus nodes on one real redis-server, behind an entry proxy standing in for
// the load balancer. Two demo pages join one room through the entry; the node that does not host the room
// redirects its page to the one that does. Then the hosting node is killed (SIGKILL, no drain): both pages
// must notice, find that the session cannot be resumed, join again through the entry (which lands on the
// surviving node once the dead one's registration expires), republish, and receive each other's media again.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { EntryProxy, RedisServer } from './cluster-support.mjs';
import { Browser, ChorusServer, events, repoRoot, waitFor, withDiagnostics } from './harness.mjs';
import { assertFlowing, waitForState } from './media-checks.mjs';

const API_KEY = 'cluster-e2e';
const API_SECRET = crypto.randomBytes(32).toString('hex');
const ROOM = `cluster-${Date.now().toString(36)}`;
/** A dead node's registration expires after 6 s; then rejoining, ICE and the first keyframe. */
const RECOVERY_TIMEOUT_MS = 45000;

function token(identity) {
  const bin = path.resolve(repoRoot, process.env.CHORUS_BIN || 'target/release/chorus');
  const args = ['token', '--api-key', API_KEY, '--room', ROOM, '--identity', identity, '--ttl', '10m'];
  return execFileSync(bin, args, {
    encoding: 'utf8',
    env: { ...process.env, CHORUS_API_SECRET: API_SECRET },
  }).trim();
}

/** What a page's signaling is connected to, and its participant sid. */
function session(entry) {
  return entry.page.evaluate(() => ({
    wsUrl: window.chorusRoom._signaling._wsUrl,
    socketUrl: window.chorusRoom._ws ? window.chorusRoom._ws.url : null,
    sid: window.chorusRoom.localParticipant && window.chorusRoom.localParticipant.sid,
  }));
}

const portOf = (url) => Number(new URL(url).port);

/** Runs `fn`; if it throws, prints every node's log first. */
async function withNodeLogs(nodes, fn) {
  try {
    await fn();
  } catch (err) {
    for (const n of nodes) process.stderr.write(`--- ${n.id}: ${n.command}\n${n.log.text()}\n`);
    throw err;
  }
}

describe('cluster in the browser', { timeout: 240000 }, () => {
  const redis = new RedisServer();
  const nodes = [];
  let entry;
  const browser = new Browser();

  before(async () => {
    await redis.start();
    for (const id of ['node-a', 'node-b']) {
      const node = new ChorusServer({
        extraArgs: ['--api-key', API_KEY, '--http-bind', '127.0.0.1', '--redis-url', redis.url, '--node-id', id],
        env: { CHORUS_API_SECRET: API_SECRET },
      });
      node.id = id;
      nodes.push(await node.start());
    }
    entry = await new EntryProxy(nodes.map((n) => n.httpPort)).start();
    await browser.launch();
  });

  after(async () => {
    await browser.close();
    for (const node of nodes) await node.stop();
    await entry?.stop();
    redis.stop();
  });

  it('pages meet on one node through the entry; when that node dies they rejoin on the other', async () => {
    await withDiagnostics('cluster failover', { browser }, () => withNodeLogs(nodes, async () => {
      const pageUrl = (identity) =>
        `${entry.url}/?room=${ROOM}&identity=${identity}&name=${identity}&debug=1&token=${token(identity)}`;
      // One after the other, so that the entry hands their WebSockets to different nodes (round-robin).
      const alice = await browser.open('alice', pageUrl('alice'));
      await waitForState(alice, 'connected');
      const bob = await browser.open('bob', pageUrl('bob'));
      await waitForState(bob, 'connected');
      assert.deepEqual(
        [...entry.rtcConnections.values()],
        [1, 1],
        'the entry gave each node one of the two WebSockets',
      );

      // Exactly one page was redirected: its signaling now goes straight to the hosting node.
      const before = { alice: await session(alice), bob: await session(bob) };
      const redirected = Object.entries(before).filter(([, s]) => portOf(s.wsUrl) !== entry.port);
      assert.equal(redirected.length, 1, `one page follows a redirect: ${JSON.stringify(before)}`);
      const host = nodes.find((n) => n.httpPort === portOf(redirected[0][1].wsUrl));
      const survivor = nodes.find((n) => n !== host);
      assert.ok(host, `the redirect points at a node: ${redirected[0][1].wsUrl}`);
      console.log(`room hosted on ${host.id}; ${redirected[0][0]} was redirected there`);
      await assertFlowing([alice, bob], 'through the cluster');

      const killedAt = Date.now();
      await host.kill();
      console.log(`killed ${host.id}`);
      const rejoinedAt = {};
      await waitFor(
        async () => {
          for (const page of [alice, bob]) {
            if (rejoinedAt[page.label]) continue;
            const found = (await events(page)).find((e) => e.type === 'reconnected' && e.rejoined && e.t > killedAt);
            if (found) rejoinedAt[page.label] = found.t;
          }
          return Object.keys(rejoinedAt).length === 2;
        },
        { timeoutMs: RECOVERY_TIMEOUT_MS, intervalMs: 250, what: 'both pages to rejoin' },
      );
      await Promise.all([alice, bob].map((p) => waitForState(p, 'connected')));
      const flowing = await assertFlowing([alice, bob], 'after the failover');
      const recovered = Date.now() - killedAt;
      console.log(
        `failover: rejoined after ${rejoinedAt.alice - killedAt} ms (alice) and ${rejoinedAt.bob - killedAt} ms ` +
          `(bob); media flowing both ways ${recovered} ms after the kill ` +
          `(alice <- bob: ${flowing[0].bob.videoFramesDecoded} frames since the rejoin)`,
      );

      for (const page of [alice, bob]) {
        const now = await session(page);
        const types = (await events(page)).filter((e) => e.t > killedAt).map((e) => e.type);
        assert.ok(types.includes('reconnecting'), `${page.label}: ${types.join(', ')}`);
        assert.ok(!types.includes('disconnected'), `${page.label} gave up: ${types.join(', ')}`);
        assert.notEqual(now.sid, before[page.label].sid, `${page.label} has a new session`);
        const via = portOf(now.socketUrl);
        assert.ok(
          via === entry.port || via === survivor.httpPort,
          `${page.label} is connected through the entry or to ${survivor.id}: ${now.socketUrl}`,
        );
        // The other identity is back in this page's roster under its new sid.
        const roster = await page.page.evaluate(() => [...window.chorusRoom.participants.values()].map((p) => p.sid));
        const other = page === alice ? bob : alice;
        assert.deepEqual(roster, [(await session(other)).sid], `${page.label}'s roster`);
      }
    }));
  });
});
