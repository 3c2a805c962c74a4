// Browser end-to-end test: a real Chorus server, headless Chromium with fake camera/microphone,
// three demo pages in one room. Run with `node --test tests/browser/` (see scripts/test.sh).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Browser, ChorusServer, events, waitFor, withDiagnostics } from './harness.mjs';
import { assertFlowing, waitForState } from './media-checks.mjs';

describe('browser end-to-end', { timeout: 240000 }, () => {
  const server = new ChorusServer();
  const browser = new Browser();
  const room = `e2e-${Date.now().toString(36)}`;
  const pageUrl = (identity, extra = '') =>
    `${server.baseUrl}/?room=${room}&identity=${identity}&name=${identity[0].toUpperCase()}${identity.slice(1)}&debug=1${extra}`;
  let alice;
  let bob;
  let carol;

  before(async () => {
    await server.start();
    await browser.launch();
  });

  after(async () => {
    await browser.close();
    await server.stop();
  });

  it('three participants exchange audio and video; one leaves, the others keep flowing', async () => {
    await withDiagnostics('three participants', { server, browser }, async () => {
      [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((id) => browser.open(id, pageUrl(id))));
      await Promise.all([alice, bob, carol].map((p) => waitForState(p, 'connected')));

      const flowing = await assertFlowing([alice, bob, carol], 'three in the room');
      const summary = [alice, bob, carol].flatMap((entry, i) =>
        Object.values(flowing[i]).map(
          (s) =>
            `${entry.label}<-${s.identity}: ${s.videoFramesDecoded} frames ${s.frameWidth}x${s.frameHeight}, ` +
            `${s.audioPacketsReceived} audio packets`,
        ),
      );
      console.log(`media with three participants: ${summary.join('; ')}`);
      const sent = await alice.page.evaluate(() => window.chorusRoom.getLocalStats());
      const layers = sent.filter((s) => s.kind === 'video').map((s) => `${s.rid}:${s.frameWidth}x${s.frameHeight}`);
      console.log(`alice sends simulcast layers ${layers.sort().join(' ')}`);

      // Call quality as the server measures it from Chromium's RTCP and congestion feedback.
      let quality;
      await waitFor(
        async () => {
          const { status, body } = await server.api(`/rooms/${room}/participants/alice/stats`);
          assert.equal(status, 200, JSON.stringify(body));
          quality = body;
          return body.mos !== null && body.rttMs !== null && body.session?.samples >= 2;
        },
        { timeoutMs: 20000, what: "alice's call quality with an RTT and a score" },
      );
      console.log(`alice's call quality: ${JSON.stringify(quality)}`);
      assert.ok(quality.mos >= 1 && quality.mos <= 4.5, `MOS in range: ${quality.mos}`);
      assert.ok(quality.rttMs >= 0 && quality.rttMs < 500, `RTT ${quality.rttMs} ms`);
      assert.ok(quality.bitrateInBps > 50000, `alice sends audio and video: ${quality.bitrateInBps} bit/s`);
      assert.ok(quality.bitrateOutBps > 50000, `alice receives two others: ${quality.bitrateOutBps} bit/s`);

      await carol.page.evaluate(() => window.chorusRoom.leave());
      for (const entry of [alice, bob]) {
        await waitFor(
          async () => (await events(entry)).some((e) => e.type === 'participantLeft' && e.identity === 'carol'),
          {
            timeoutMs: 15000,
            what: `${entry.label} to see carol leave`,
          },
        );
      }
      await assertFlowing([alice, bob], 'after carol left');
    });
  });

  it('a page with a bad token fails with unauthorized; the others are unaffected', async () => {
    await withDiagnostics('bad token', { server, browser }, async () => {
      const mallory = await browser.open('mallory', pageUrl('mallory', '&token=garbage'));
      await waitForState(mallory, 'error', 15000);
      const error = await mallory.page.evaluate(() => window.chorusError);
      assert.equal(error && error.code, 'unauthorized', `mallory's error: ${JSON.stringify(error)}`);
      const shown = await mallory.page.textContent('body');
      assert.match(shown, /unauthorized/, 'the page shows the error');

      if (alice && bob) {
        for (const entry of [alice, bob]) {
          const joined = (await events(entry)).filter(
            (e) => e.type === 'participantJoined' && e.identity === 'mallory',
          );
          assert.deepEqual(joined, [], `${entry.label} saw mallory join`);
        }
        await assertFlowing([alice, bob], 'after the bad token');
      }
    });
  });

  it('muting a track is announced to the others', async () => {
    if (!alice || !bob) return;
    await withDiagnostics('mute', { server, browser }, async () => {
      const seen = (muted) => async () =>
        (await events(bob)).some((e) => e.type === 'trackMuted' && e.identity === 'alice' && e.muted === muted);
      await alice.page.evaluate(() => window.chorusRoom.setMuted('microphone', true));
      await waitFor(seen(true), { timeoutMs: 10000, what: 'bob to see alice muted' });
      await alice.page.evaluate(() => window.chorusRoom.setMuted('microphone', false));
      await waitFor(seen(false), { timeoutMs: 10000, what: 'bob to see alice unmuted' });
    });
  });

  it('active speakers: both talking pages are listed; a muted microphone drops out and comes back', async () => {
    if (!alice || !bob) return;
    await withDiagnostics('active speakers', { server, browser }, async () => {
      // Chromium's fake microphone beeps loudly enough to count as speech.
      const speakers = (entry) => entry.page.evaluate(() => window.chorusRoom.activeSpeakers.map((p) => p.identity));
      const listed = (want) => async () => {
        const lists = await Promise.all([alice, bob].map(speakers));
        return lists.every((l) => [...l].sort().join() === want) && lists;
      };
      await waitFor(listed('alice,bob'), { timeoutMs: 15000, what: 'alice and bob as active speakers on both pages' });
      await bob.page.evaluate(() => window.chorusRoom.setMuted('microphone', true));
      await waitFor(listed('alice'), { timeoutMs: 15000, what: 'bob to drop out once muted' });
      const tile = await alice.page.evaluate(() => document.querySelector('#local-tile').classList.contains('speaking'));
      assert.ok(tile, "alice's own tile is highlighted as speaking");
      await bob.page.evaluate(() => window.chorusRoom.setMuted('microphone', false));
      await waitFor(listed('alice,bob'), { timeoutMs: 15000, what: 'bob back once unmuted' });
    });
  });

  it('a dropped WebSocket is resumed without the others noticing', async () => {
    if (!alice || !bob) return;
    await withDiagnostics('resume', { server, browser }, async () => {
      // Close the signaling socket without `leave`, as a network drop would; the peer connections stay up.
      await alice.page.evaluate(() => window.chorusRoom._ws.close());
      await waitFor(async () => (await events(alice)).some((e) => e.type === 'reconnected'), {
        timeoutMs: 15000,
        what: 'alice to resume',
      });
      const types = (await events(alice)).map((e) => e.type);
      assert.ok(types.includes('reconnecting'), `alice's events: ${types.join(', ')}`);
      assert.ok(!types.includes('disconnected'), `alice's events: ${types.join(', ')}`);
      const bobSaw = (await events(bob)).filter((e) => e.identity === 'alice' && e.type === 'participantLeft');
      assert.deepEqual(bobSaw, [], 'bob saw alice leave');
      await assertFlowing([alice, bob], 'after resuming');
      // The resumed session still signals: a mute reaches bob.
      await alice.page.evaluate(() => window.chorusRoom.setMuted('camera', true));
      await waitFor(
        async () => (await events(bob)).some((e) => e.type === 'trackMuted' && e.identity === 'alice' && e.muted),
        { timeoutMs: 10000, what: 'bob to see alice mute her camera after the resume' },
      );
      await alice.page.evaluate(() => window.chorusRoom.setMuted('camera', false));
    });
  });

  it('a participant who left can rejoin and everyone sees and hears her again', async () => {
    if (!alice || !bob) return;
    await withDiagnostics('rejoin', { server, browser }, async () => {
      // carol left in the first test; her old subscriber mids at alice and bob are free and get reused now.
      const carol2 = await browser.open('carol', pageUrl('carol'));
      await waitForState(carol2, 'connected');
      await assertFlowing([alice, bob, carol2], 'after carol rejoined');
    });
  });
});
