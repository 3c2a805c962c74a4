/**
 * Chorus SDK — statistics from `getStats()`: inbound media per remote participant (subscriber connection,
 * `room.getRemoteStats()`) and one entry per outbound RTP stream (publisher connection,
 * `room.getLocalStats()`).
 *
 * Read-only: it changes nothing in the Room or the connections.
 */

function emptyStats(p) {
  return {
    sid: p.sid,
    identity: p.identity,
    videoFramesDecoded: 0,
    videoFramesReceived: 0,
    videoBytesReceived: 0,
    videoPacketsReceived: 0,
    videoPacketsLost: 0,
    videoKeyFramesDecoded: 0,
    videoPliCount: 0,
    videoNackCount: 0,
    videoFreezeCount: 0,
    audioPacketsReceived: 0,
    audioBytesReceived: 0,
    audioPacketsLost: 0,
    frameWidth: 0,
    frameHeight: 0,
  };
}

/**
 * Inbound media per remote participant of `room`, keyed by participant sid; media is attributed through
 * the subscriber's mid map of the latest offer.
 * @param {import('./room.js').Room} room
 */
export async function remoteStats(room) {
  const out = {};
  for (const p of room.participants.values()) out[p.sid] = emptyStats(p);
  const subscriber = room._subscriber;
  const pc = subscriber.pc;
  if (!pc) return out;
  const midByTrackId = new Map();
  for (const tr of pc.getTransceivers())
    if (tr.mid != null && tr.receiver.track) midByTrackId.set(tr.receiver.track.id, tr.mid);
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    const mid = s.mid != null ? String(s.mid) : midByTrackId.get(s.trackIdentifier);
    const a = mid != null && subscriber.mids.get(mid);
    if (!a) return;
    const p = room.participants.get(a.participantSid);
    const st =
      out[a.participantSid] || (out[a.participantSid] = emptyStats(p || { sid: a.participantSid, identity: '' }));
    if (s.kind === 'video') {
      st.videoFramesDecoded += s.framesDecoded || 0;
      st.videoFramesReceived += s.framesReceived || 0;
      st.videoBytesReceived += s.bytesReceived || 0;
      st.videoPacketsReceived += s.packetsReceived || 0;
      st.videoPacketsLost += s.packetsLost || 0;
      st.videoKeyFramesDecoded += s.keyFramesDecoded || 0;
      st.videoPliCount += s.pliCount || 0;
      st.videoNackCount += s.nackCount || 0;
      st.videoFreezeCount += s.freezeCount || 0;
      st.frameWidth = Math.max(st.frameWidth, s.frameWidth || 0);
      st.frameHeight = Math.max(st.frameHeight, s.frameHeight || 0);
    } else if (s.kind === 'audio') {
      st.audioPacketsReceived += s.packetsReceived || 0;
      st.audioBytesReceived += s.bytesReceived || 0;
      st.audioPacketsLost += s.packetsLost || 0;
    }
  });
  return out;
}

/** What `pc` (the publisher connection, or null) sends: one entry per outbound RTP stream (per rid). */
export async function localStats(pc) {
  if (!pc) return [];
  const report = await pc.getStats();
  const out = [];
  report.forEach((s) => {
    if (s.type !== 'outbound-rtp') return;
    out.push({
      kind: s.kind,
      mid: s.mid,
      rid: s.rid || null,
      bytesSent: s.bytesSent || 0,
      packetsSent: s.packetsSent || 0,
      framesEncoded: s.framesEncoded || 0,
      frameWidth: s.frameWidth || 0,
      frameHeight: s.frameHeight || 0,
      qualityLimitationReason: s.qualityLimitationReason || null,
      // Whether the encoding is being sent (false after dynacast switched it off).
      active: s.active !== false,
    });
  });
  return out;
}
