/**
 * Chorus SDK — the roster: keeps the Room's `participants` (RemoteParticipants and their RemoteTracks) in
 * line with the server, from `joined`, `participantJoined`, `participantLeft`, `trackPublished`,
 * `trackUnpublished`, `trackMuted` and, after a resume, the full list in `resumed` — emitting each
 * difference as the ordinary event.
 *
 * It asks the subscriber to re-bind media after every change but owns no connection; the local participant
 * and local tracks are not here.
 */

import { RemoteParticipant, RemoteTrack } from './participants.js';

export class Roster {
  /** @param {import('./room.js').Room} room */
  constructor(room) {
    this._room = room;
  }

  /** A new RemoteTrack, introduced to the quality control (preferences, adaptive stream). */
  _track(info, participant) {
    const t = new RemoteTrack(info, participant);
    this._room._quality.adopt(t);
    return t;
  }

  _reconcileSubscriptions() {
    this._room._subscriber.reconcile();
  }

  /** Adds a participant (and its tracks) without emitting anything; returns it. */
  add(info) {
    const p = new RemoteParticipant(info);
    for (const ti of info.tracks || []) p.tracks.set(ti.sid, this._track(ti, p));
    this._room.participants.set(p.sid, p);
    return p;
  }

  /** Removes a participant: `trackUnsubscribed` for its tracks, then `participantLeft`. */
  remove(sid, reason) {
    const room = this._room;
    const p = room.participants.get(sid);
    if (!p) return;
    room.participants.delete(sid);
    this._reconcileSubscriptions(); // emits trackUnsubscribed for its tracks
    room.emit('participantLeft', p, reason);
    if (p.isSpeaking) {
      p.isSpeaking = false;
      room.activeSpeakers = room.activeSpeakers.filter((x) => x !== p);
      room.emit('activeSpeakersChanged', room.activeSpeakers);
    }
  }

  /** Brings `participants` in line with the room as the server sees it now, emitting the differences. */
  reconcile(infos) {
    const room = this._room;
    const seen = new Set();
    for (const info of infos) {
      seen.add(info.sid);
      const existing = room.participants.get(info.sid);
      if (!existing) {
        const p = this.add(info);
        room.emit('participantJoined', p);
        for (const t of p.tracks.values()) room.emit('trackPublished', t);
        continue;
      }
      existing.identity = info.identity;
      existing.name = info.name || '';
      const trackSids = new Set();
      for (const ti of info.tracks || []) {
        trackSids.add(ti.sid);
        const t = existing.tracks.get(ti.sid);
        if (!t) {
          const nt = this._track(ti, existing);
          existing.tracks.set(ti.sid, nt);
          room.emit('trackPublished', nt);
        } else {
          const wasMuted = t.muted;
          t._update(ti);
          if (wasMuted !== t.muted)
            room.emit('trackMuted', { participant: existing, trackSid: t.sid, muted: t.muted, track: t });
        }
      }
      for (const [sid, t] of [...existing.tracks]) {
        if (!trackSids.has(sid)) {
          existing.tracks.delete(sid);
          this._reconcileSubscriptions();
          room.emit('trackUnpublished', t);
        }
      }
    }
    for (const p of [...room.participants.values()]) {
      if (!seen.has(p.sid)) this.remove(p.sid, 'left while reconnecting');
    }
  }

  /** The roster as participant infos (the wire shape), for `reconcile`. */
  infos() {
    return [...this._room.participants.values()].map((p) => ({
      sid: p.sid,
      identity: p.identity,
      name: p.name,
      tracks: [...p.tracks.values()].map((t) => ({
        sid: t.sid,
        kind: t.kind,
        source: t.source,
        name: t.name,
        muted: t.muted,
        layers: t.layers,
      })),
    }));
  }

  // ---------------------------------------------------------------------------------------------
  // Messages

  onParticipantJoined(msg) {
    const room = this._room;
    const info = msg.participant;
    if (!info || (room.localParticipant && info.sid === room.localParticipant.sid)) return;
    if (room.participants.has(info.sid)) {
      this.reconcile([...this.infos().filter((p) => p.sid !== info.sid), info]);
      return;
    }
    const p = this.add(info);
    room.emit('participantJoined', p);
    for (const t of p.tracks.values()) room.emit('trackPublished', t);
    this._reconcileSubscriptions();
  }

  onParticipantLeft(msg) {
    this.remove(msg.participantSid, msg.reason || '');
  }

  /**
   * `activeSpeakers`: who is talking now, loudest first. Sets `isSpeaking` and `audioLevel` (1-127) on those
   * participants (the local one included), clears them on the others, and emits `activeSpeakersChanged`.
   */
  onActiveSpeakers(msg) {
    const room = this._room;
    const local = room.localParticipant;
    for (const p of room.activeSpeakers) {
      p.isSpeaking = false;
      p.audioLevel = 0;
    }
    room.activeSpeakers = [];
    for (const s of msg.speakers || []) {
      const p = local && local.sid === s.participantSid ? local : room.participants.get(s.participantSid);
      if (!p) continue;
      p.isSpeaking = true;
      p.audioLevel = s.level;
      room.activeSpeakers.push(p);
    }
    room.emit('activeSpeakersChanged', room.activeSpeakers);
  }

  onTrackPublished(msg) {
    const room = this._room;
    const p = room.participants.get(msg.participantSid);
    if (!p || !msg.track) return;
    let t = p.tracks.get(msg.track.sid);
    if (t) t._update(msg.track);
    else {
      t = this._track(msg.track, p);
      p.tracks.set(t.sid, t);
    }
    room.emit('trackPublished', t);
    this._reconcileSubscriptions();
  }

  onTrackUnpublished(msg) {
    const p = this._room.participants.get(msg.participantSid);
    const t = p && p.tracks.get(msg.trackSid);
    if (!t) return;
    p.tracks.delete(msg.trackSid);
    this._reconcileSubscriptions();
    this._room.emit('trackUnpublished', t);
  }

  onTrackMuted(msg) {
    const p = this._room.participants.get(msg.participantSid);
    const t = p && p.tracks.get(msg.trackSid);
    if (t) t.muted = !!msg.muted;
    if (p)
      this._room.emit('trackMuted', { participant: p, trackSid: msg.trackSid, muted: !!msg.muted, track: t || null });
  }
}
