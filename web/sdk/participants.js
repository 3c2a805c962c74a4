/**
 * Chorus SDK — the objects the Room hands out: `RemoteParticipant`, `RemoteTrack`, `LocalParticipant`,
 * `LocalTrack`, and playing a track in a <video>/<audio> element (`attach` / `detach`).
 *
 * Plain data plus element handling: they send nothing and hold no connection. Keeping them in line with the
 * server is `roster.js` (remote side), `publisher.js` (local sids) and `subscriber.js` (media).
 */

function attachTo(mediaStreamTrack, kind, element, attached) {
  const el = element || document.createElement(kind === 'audio' ? 'audio' : 'video');
  el.autoplay = true;
  if ('playsInline' in el) el.playsInline = true;
  el.srcObject = mediaStreamTrack ? new MediaStream([mediaStreamTrack]) : null;
  attached.add(el);
  if (mediaStreamTrack && typeof el.play === 'function') {
    const p = el.play();
    if (p && typeof p.catch === 'function') p.catch(() => {}); // autoplay policy: the caller decides
  }
  return el;
}

/** A track published by another participant. */
export class RemoteTrack {
  constructor(info, participant) {
    this.sid = info.sid;
    this.participant = participant;
    this.mid = null;
    this.subscribed = false;
    this.mediaStreamTrack = null;
    /** The quality asked for with `room.setTrackQuality` (null: the room default). */
    this.preferredQuality = null;
    /** Whether the server paused this track because our downlink cannot carry it (`streamStateChanged`). */
    this.streamPaused = false;
    this._attached = new Set();
    this._quality = null; // set by the Room: reports attachments for adaptive stream
    this._update(info);
  }

  _update(info) {
    this.kind = info.kind;
    this.source = info.source || 'unknown';
    this.name = info.name || '';
    this.muted = !!info.muted;
    this.layers = info.layers || [];
    this.width = info.width || null;
    this.height = info.height || null;
  }

  /** Plays the track in `element` (or a new <video>/<audio>) and returns that element. */
  attach(element) {
    const el = attachTo(this.mediaStreamTrack, this.kind, element, this._attached);
    if (this._quality) this._quality.observe(this, el);
    return el;
  }

  /** Stops playing in `element`, or in every attached element; returns the detached elements. */
  detach(element) {
    const els = element ? [element] : [...this._attached];
    for (const el of els) {
      el.srcObject = null;
      this._attached.delete(el);
      if (this._quality) this._quality.unobserve(this, el);
    }
    return els;
  }
}

/** A track this client publishes. `sid` is null until the server has assigned it. */
export class LocalTrack {
  constructor(mediaStreamTrack, transceiver, { source, name, layers }) {
    this.sid = null;
    this.kind = mediaStreamTrack.kind;
    this.source = source;
    this.name = name;
    this.layers = layers;
    this.muted = false;
    /** Dynacast: whether the server wants this track sent at all, and which simulcast layers. */
    this.enabled = true;
    this.activeLayers = layers.slice();
    this.mediaStreamTrack = mediaStreamTrack;
    this.transceiver = transceiver;
    this._attached = new Set();
  }

  get mid() {
    return this.transceiver ? this.transceiver.mid : null;
  }

  /** Shows the local track in `element` (or a new element); mute a local <video> preview yourself. */
  attach(element) {
    return attachTo(this.mediaStreamTrack, this.kind, element, this._attached);
  }

  detach(element) {
    const els = element ? [element] : [...this._attached];
    for (const el of els) {
      el.srcObject = null;
      this._attached.delete(el);
    }
    return els;
  }
}

/** Another participant in the room. */
export class RemoteParticipant {
  constructor(info) {
    this.sid = info.sid;
    this.tracks = new Map();
    this.identity = info.identity;
    this.name = info.name || '';
    /** Whether the server counts it among the room's active speakers, and how loud (1-127). */
    this.isSpeaking = false;
    this.audioLevel = 0;
  }
}

/** This client, once joined. */
export class LocalParticipant {
  constructor(info) {
    this.sid = info.sid;
    this.identity = info.identity;
    this.name = info.name || '';
    this.tracks = new Map();
    this.isSpeaking = false;
    this.audioLevel = 0;
  }
}
