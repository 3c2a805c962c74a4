/**
 * Chorus SDK — the subscriber RTCPeerConnection, where the server makes every offer and this client
 * answers: applying offers one at a time, the mid → {trackSid, participantSid} map of the latest offer, and
 * binding received media to RemoteTracks (`trackSubscribed` / `trackUnsubscribed`).
 *
 * It reads the Room's `participants` (kept by `roster.js`) and emits on the Room; it never adds or removes
 * participants or tracks.
 */

import { closePeerConnection } from './peer.js';

export class Subscriber {
  /**
   * @param {import('./room.js').Room} room
   * @param {import('./signaling.js').Signaling} signaling
   */
  constructor(room, signaling) {
    this._room = room;
    this._signaling = signaling;
    this.reset();
  }

  reset() {
    /** @type {RTCPeerConnection|null} */
    this.pc = null;
    this._chain = Promise.resolve();
    /** mid -> {trackSid, participantSid}, from the latest server offer */
    this.mids = new Map();
    this._bound = new Map(); // mid -> RemoteTrack we emitted trackSubscribed for
  }

  /** Uses `pc` (from `createPeerConnection`) from now on. */
  start(pc) {
    this.pc = pc;
    pc.ontrack = () => this.reconcile();
  }

  /** Closes the connection and forgets the bindings (without emitting `trackUnsubscribed`). */
  close() {
    closePeerConnection(this.pc);
    this.pc = null;
    this._bound.clear();
  }

  /**
   * A server `offer`: answered after every earlier one; failures are reported, never thrown. It belongs to the
   * connection of the session it arrived in: if that connection is replaced meanwhile (a rejoin), it is dropped,
   * never applied to the new one (whose server expects answers to its own offers only).
   */
  enqueueOffer(msg) {
    const pc = this.pc;
    this._chain = this._chain.then(() => this._onOffer(pc, msg)).catch((err) => this._room._reportError(err));
  }

  async _onOffer(pc, msg) {
    if (!pc || this.pc !== pc) return;
    const mids = new Map();
    for (const t of msg.tracks || [])
      mids.set(String(t.mid), { trackSid: t.trackSid, participantSid: t.participantSid });
    this.mids = mids; // ontrack (fired inside setRemoteDescription) binds with the new map
    this._signaling.holdCandidates('subscriber');
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (this.pc !== pc) return;
    this._signaling.send({ type: 'answer', sdp: pc.localDescription.sdp });
    this._signaling.releaseCandidates('subscriber');
    this.reconcile();
  }

  /**
   * Makes the set of subscribed RemoteTracks match the latest server offer and the known
   * participants: emits trackUnsubscribed for mids that ended or changed, trackSubscribed for mids
   * whose track is known and has a receiver. Idempotent.
   */
  reconcile() {
    const room = this._room;
    for (const [mid, track] of [...this._bound]) {
      const a = this.mids.get(mid);
      const p = room.participants.get(track.participant.sid);
      if (!a || a.trackSid !== track.sid || !p || p.tracks.get(track.sid) !== track) {
        this._bound.delete(mid);
        track.detach();
        track.subscribed = false;
        track.mediaStreamTrack = null;
        track.mid = null;
        room.emit('trackUnsubscribed', track);
      }
    }
    const pc = this.pc;
    if (!pc) return;
    for (const tr of pc.getTransceivers()) {
      const mid = tr.mid;
      if (mid == null || this._bound.has(mid)) continue;
      const a = this.mids.get(mid);
      if (!a) continue;
      const p = room.participants.get(a.participantSid);
      const track = p && p.tracks.get(a.trackSid);
      if (!track || track.subscribed || !tr.receiver.track) continue; // bound later, once announced
      this._bound.set(mid, track);
      track.mid = mid;
      track.subscribed = true;
      track.mediaStreamTrack = tr.receiver.track;
      room.emit('trackSubscribed', track);
    }
  }
}
