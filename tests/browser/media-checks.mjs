// Checks shared by the browser tests that run calls: a page reaching a state, and media flowing between
// every pair of pages (and still flowing a moment later).

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

import { stats, waitFor } from './harness.mjs';

const FLOW_TIMEOUT_MS = 30000;
const SAMPLE_GAP_MS = 2500;
const STALL_LIMIT_MS = 8000;

/** Waits until `entry`'s page reports `state` (fails early on `error`). */
export async function waitForState(entry, state, timeoutMs = 20000) {
  await waitFor(
    async () => {
      const s = await entry.page.evaluate(() => ({ state: window.chorusState, error: window.chorusError }));
      if (s.state === 'error' && state !== 'error') throw new Error(`${entry.label}: ${JSON.stringify(s.error)}`);
      return s.state === state;
    },
    { timeoutMs, what: `${entry.label} to be ${state}` },
  );
}

/**
 * Asserts that every page receives video frames and audio packets from every other page's identity,
 * and that both keep increasing (checked after SAMPLE_GAP_MS, tolerated stall up to STALL_LIMIT_MS).
 */
export async function assertFlowing(pages, what) {
  const others = (entry) => pages.filter((p) => p !== entry).map((p) => p.label);
  await waitFor(
    async () => {
      const all = await Promise.all(pages.map(stats));
      const missing = [];
      pages.forEach((entry, i) => {
        for (const id of others(entry)) {
          const s = all[i][id];
          if (!s || !(s.videoFramesDecoded > 0) || !(s.audioPacketsReceived > 0)) {
            missing.push(
              `${entry.label}<-${id}: ${s ? `frames ${s.videoFramesDecoded}, audio pkts ${s.audioPacketsReceived}` : 'no stats'}`,
            );
          }
        }
      });
      if (missing.length) throw new Error(missing.join('; ')); // waitFor retries and reports the last one
      return true;
    },
    { timeoutMs: FLOW_TIMEOUT_MS, intervalMs: 1000, what: `${what}: media from every peer` },
  );
  // Then frames and audio packets must keep increasing. The first check is after SAMPLE_GAP_MS; a stream
  // that stalls briefly (e.g. a simulcast layer switch waiting for a keyframe) gets until STALL_LIMIT_MS.
  const first = await Promise.all(pages.map(stats));
  const deadline = Date.now() + STALL_LIMIT_MS;
  await sleep(SAMPLE_GAP_MS);
  for (;;) {
    const second = await Promise.all(pages.map(stats));
    const stalled = [];
    pages.forEach((entry, i) => {
      for (const id of others(entry)) {
        const a = first[i][id] || { videoFramesDecoded: 0, videoPacketsReceived: 0, audioPacketsReceived: 0 };
        const b = second[i][id];
        if (!b) stalled.push(`${entry.label} has no stats for ${id} any more`);
        else {
          if (!(b.videoFramesDecoded > a.videoFramesDecoded)) {
            stalled.push(
              `${entry.label} stopped decoding video from ${id} (frames ${a.videoFramesDecoded} -> ${b.videoFramesDecoded}, ` +
                `packets ${a.videoPacketsReceived} -> ${b.videoPacketsReceived}, keyframes ${b.videoKeyFramesDecoded}, ` +
                `PLIs ${b.videoPliCount}, ${b.frameWidth}x${b.frameHeight})`,
            );
          }
          if (!(b.audioPacketsReceived > a.audioPacketsReceived)) {
            stalled.push(
              `${entry.label} stopped receiving audio from ${id} (${a.audioPacketsReceived} -> ${b.audioPacketsReceived})`,
            );
          }
        }
      }
    });
    if (stalled.length === 0) return second;
    assert.ok(Date.now() < deadline, `${what}: ${stalled.join('; ')} (over ${STALL_LIMIT_MS} ms)`);
    console.log(`note: ${what}: stalled after ${SAMPLE_GAP_MS} ms, still waiting: ${stalled.join('; ')}`);
    await sleep(1000);
  }
}
