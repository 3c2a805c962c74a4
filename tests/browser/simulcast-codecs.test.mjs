// Simulcast in the other codecs a browser can send: for H.264, VP9 and AV1 in turn (`&codec=`), one publisher
// tab sends three layers and two viewer tabs ask for `low` and `high`. Each viewer must decode that codec at
// its own layer (low: at most 320 px wide; high: a bigger one), then the high viewer switches down to the
// quarter layer and keeps decoding without a freeze. A switch down needs no bandwidth estimate to grow, so it
// tests the codec's keyframe-anchored switch alone; switching up as the estimate grows is covered, in VP8, by
// simulcast.test.mjs.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Browser, ChorusServer, waitFor, withDiagnostics } from './harness.mjs';

const CODECS = [
  ['h264', 'video/H264'],
  ['vp9', 'video/VP9'],
  ['av1', 'video/AV1'],
];

/** What `entry` decodes of the publisher's video: codec, width, frames decoded, freezes (or null). */
function inbound(entry) {
  return entry.page.evaluate(async () => {
    const pc = window.chorusRoom._subscriber.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    let found = null;
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video' || !(s.framesDecoded > 0)) return;
      const codec = report.get(s.codecId);
      found = {
        codec: codec ? codec.mimeType : null,
        width: s.frameWidth || 0,
        decoded: s.framesDecoded,
        freezes: s.freezeCount || 0,
      };
    });
    return found;
  });
}

describe('simulcast in H.264, VP9 and AV1', { timeout: 300000 }, () => {
  const server = new ChorusServer();
  const browser = new Browser();

  before(async () => {
    await server.start();
    await browser.launch();
  });

  after(async () => {
    await browser.close();
    await server.stop();
  });

  for (const [codec, mime] of CODECS) {
    it(`${codec}: each viewer gets its own layer, and the high one switches down without a freeze`, async () => {
      let pages = [];
      await withDiagnostics(`simulcast ${codec}`, { server, browser }, async () => {
        const room = `codec-${codec}-${Date.now().toString(36)}`;
        const url = (id, extra) => `${server.baseUrl}/?room=${room}&identity=${id}&debug=1${extra}`;
        const pub = await browser.open(`${codec}-pub`, url('pub', `&codec=${codec}`));
        const low = await browser.open(`${codec}-low`, url('low', '&publish=0&quality=low'));
        const high = await browser.open(`${codec}-high`, url('high', '&publish=0&quality=high'));
        const layers = await waitFor(
          async () => {
            const [l, h] = await Promise.all([inbound(low), inbound(high)]);
            return l && h && l.decoded > 20 && h.decoded > 20 && h.width > 320 && { l, h };
          },
          { timeoutMs: 30000, what: `both viewers decoding ${codec}, high above 320 px` },
        );
        assert.equal(layers.l.codec, mime, 'the low viewer decodes the chosen codec');
        assert.equal(layers.h.codec, mime, 'the high viewer decodes the chosen codec');
        assert.ok(layers.l.width <= 320, `low viewer: ${layers.l.width} px wide`);
        const sent = await pub.page.evaluate(() => window.chorusRoom.getLocalStats());
        const active = sent.filter((s) => s.kind === 'video' && s.frameWidth > 0).map((s) => s.rid);
        console.log(
          `${codec}: low viewer ${layers.l.width} px, high viewer ${layers.h.width} px; publisher sends ${active.sort().join(' ')}`,
        );

        const before = await inbound(high);
        await high.page.evaluate(() => {
          const room = window.chorusRoom;
          for (const p of room.participants.values())
            for (const t of p.tracks.values()) if (t.kind === 'video') room.setTrackQuality(t.sid, 'low');
        });
        const switched = await waitFor(
          async () => {
            const h = await inbound(high);
            return h && h.width > 0 && h.width <= 320 && h;
          },
          { timeoutMs: 15000, intervalMs: 500, what: `the high viewer to move down to 320 px in ${codec}` },
        );
        await sleep(2000);
        const later = await inbound(high);
        assert.ok(later.decoded > switched.decoded, `still decoding after the switch: ${JSON.stringify(later)}`);
        assert.equal(later.freezes, before.freezes, `no freeze across the switch: ${JSON.stringify(later)}`);
        console.log(`${codec}: the high viewer switched down to ${later.width} px without a freeze`);
        // No packet of the real publisher looked like a forged SSRC re-map (sfu/src/ssrc_guard.rs).
        const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
        assert.match(metrics, /^chorus_rtp_remaps_refused_total 0$/m, `no ${codec} packet held back`);
        pages = [pub, low, high];
      });
      // Free the CPU for the next codec; on a failure the pages stay open for withDiagnostics' dump.
      for (const entry of pages) await entry.context.close().catch(() => {});
    });
  }
});
