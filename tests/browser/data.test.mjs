// Browser end-to-end test of data channels: three demo pages (viewers, no media) in one room exchange data
// through a real Chorus server. One of them has a token without canPublishData.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Browser, ChorusServer, events, repoRoot, waitFor, withDiagnostics } from './harness.mjs';

const ROOM = 'data-e2e';
const MESSAGES = 200;

/** A token minted by the server binary with one grant changed. */
function tokenFor(server, identity, grant) {
  const bin = path.resolve(repoRoot, process.env.CHORUS_BIN || 'target/release/chorus');
  const args = ['token', '--data-dir', server.dataDir, '--room', ROOM, '--identity', identity, '--grant', grant];
  return execFileSync(bin, args, { encoding: 'utf8' }).trim();
}

/** Records `data` events of the page's room into `window.__data`, starting afresh. */
function record(entry) {
  return entry.page.evaluate(() => {
    window.__data = [];
    if (window.__recording) return;
    window.__recording = true;
    window.chorusRoom.on('data', (m) =>
      window.__data.push({
        from: m.from,
        topic: m.topic,
        reliable: m.reliable,
        payload: typeof m.payload === 'string' ? m.payload : `bytes:${Array.from(m.payload).join(',')}`,
      }),
    );
  });
}

function received(entry) {
  return entry.page.evaluate(() => window.__data);
}

async function errorCodes(entry) {
  return (await events(entry)).filter((e) => e.type === 'error').map((e) => e.code);
}

describe('data channels', { timeout: 180000 }, () => {
  const server = new ChorusServer();
  const browser = new Browser();
  let alice;
  let bob;
  let carol;

  before(async () => {
    await server.start();
    await browser.launch();
    const base = `${server.baseUrl}/?room=${ROOM}&publish=0`;
    alice = await browser.open('alice', `${base}&identity=alice`);
    bob = await browser.open('bob', `${base}&identity=bob`);
    const carolToken = tokenFor(server, 'carol', 'canPublishData=false');
    carol = await browser.open('carol', `${base}&token=${carolToken}`);
    for (const p of [alice, bob, carol]) {
      await waitFor(() => p.page.evaluate(() => window.chorusRoom.state === 'connected' && window.chorusRoom.isDataOpen(true) && window.chorusRoom.isDataOpen(false)), {
        timeoutMs: 30000,
        what: `${p.label}'s data channels to open`,
      });
      await record(p);
    }
  });

  after(async () => {
    await browser.close();
    await server.stop();
  });

  it('delivers reliable messages to everyone else in order, exactly once, stamped with the sender', async () => {
    await withDiagnostics('reliable fan-out', { server, browser }, async () => {
      await alice.page.evaluate((n) => {
        for (let i = 0; i < n; i++) window.chorusRoom.sendData(`msg-${i}`, { topic: 'seq' });
      }, MESSAGES);
      for (const p of [bob, carol]) {
        await waitFor(async () => (await received(p)).length >= MESSAGES, { what: `${p.label} to get ${MESSAGES}` });
      }
      await sleep(500); // anything duplicated would have arrived by now
      for (const p of [bob, carol]) {
        const got = await received(p);
        assert.equal(got.length, MESSAGES, `${p.label}: exactly once`);
        got.forEach((m, i) => {
          assert.deepEqual(m, { from: 'alice', topic: 'seq', reliable: true, payload: `msg-${i}` });
        });
      }
      assert.equal((await received(alice)).length, 0, 'no echo to the sender');
    });
  });

  it('delivers targeted messages only to their targets, and binary and lossy messages too', async () => {
    await withDiagnostics('targeting', { server, browser }, async () => {
      for (const p of [alice, bob, carol]) await record(p);
      await bob.page.evaluate(() => {
        window.chorusRoom.sendData(new Uint8Array([1, 2, 3]), { to: ['carol'], topic: 'dm' });
        for (let i = 0; i < 10; i++) window.chorusRoom.sendData(`cursor-${i}`, { reliable: false, topic: 'cursor' });
      });
      await waitFor(async () => (await received(carol)).some((m) => m.topic === 'dm'), { what: 'carol to get the dm' });
      await waitFor(async () => (await received(alice)).some((m) => m.topic === 'cursor'), {
        what: 'alice to get lossy messages',
      });
      await sleep(500);
      const dm = (await received(carol)).filter((m) => m.topic === 'dm');
      assert.deepEqual(dm, [{ from: 'bob', topic: 'dm', reliable: true, payload: 'bytes:1,2,3' }]);
      assert.equal((await received(alice)).filter((m) => m.topic === 'dm').length, 0, 'alice was not a target');
      const lossy = (await received(alice)).filter((m) => m.topic === 'cursor');
      assert.ok(lossy.length > 0 && lossy.every((m) => !m.reliable && m.from === 'bob'));
    });
  });

  it('refuses data from a participant without canPublishData, and oversize messages', async () => {
    await withDiagnostics('refusals', { server, browser }, async () => {
      for (const p of [alice, bob, carol]) await record(p);
      await carol.page.evaluate(() => window.chorusRoom.sendData('let me talk'));
      await waitFor(async () => (await errorCodes(carol)).includes('permission_denied'), {
        what: 'carol to be refused',
      });
      await alice.page.evaluate(() => window.chorusRoom.sendData('x'.repeat(70 * 1024)));
      await waitFor(async () => (await errorCodes(alice)).includes('data_too_large'), {
        what: 'the oversize message to be refused',
      });
      await sleep(500);
      for (const p of [alice, bob, carol]) assert.deepEqual(await received(p), [], `${p.label} got nothing`);
      // The room still works after the refusals.
      await alice.page.evaluate(() => window.chorusRoom.sendData('still here', { topic: 'after' }));
      await waitFor(async () => (await received(bob)).some((m) => m.payload === 'still here'), {
        what: 'bob to get a message after the refusals',
      });
    });
  });
});
