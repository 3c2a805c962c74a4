/**
 * Chorus SDK — what this client wants of remote video: a preferred quality per track (`low | medium | high`),
 * adaptive stream (the size of the elements a track plays in, so the server sends no bigger layer than they
 * show), the server's pause/resume of tracks for bandwidth (`streamState`), and the server-side subscription
 * stats (`getStats` → `stats`).
 *
 * It sends `updateSubscription` messages and updates `RemoteTrack.preferredQuality` / `streamPaused`; the
 * server picks the layers. The Room forwards the messages and the public calls here.
 */

const QUALITIES = ['low', 'medium', 'high'];
/** Element size changes are sent at most this often per track. */
const RESIZE_DEBOUNCE_MS = 150;
const STATS_TIMEOUT_MS = 5000;

export class QualityControl {
  /**
   * @param {import('./room.js').Room} room
   * @param {import('./signaling.js').Signaling} signaling
   */
  constructor(room, signaling) {
    this._room = room;
    this._signaling = signaling;
    this.defaultQuality = null;
    this.adaptiveStream = false;
    this._observer = null;
    this.reset();
  }

  /** Sets the room-wide options: `defaultQuality` (null = high) and `adaptiveStream`. */
  configure({ defaultQuality = null, adaptiveStream = false } = {}) {
    if (defaultQuality !== null && !QUALITIES.includes(defaultQuality)) {
      throw new TypeError(`defaultQuality must be one of ${QUALITIES.join(', ')}`);
    }
    this.defaultQuality = defaultQuality;
    this.adaptiveStream = !!adaptiveStream;
  }

  reset() {
    if (this._observer) this._observer.disconnect();
    this._observer = null;
    this._elements = new Map(); // element -> RemoteTrack
    this._sent = new Map(); // trackSid -> JSON of the last preference sent
    this._timers = new Map(); // trackSid -> debounce timer
    for (const w of this._statsWaiters || []) w.reject(new Error('disconnected'));
    this._statsWaiters = [];
  }

  /** Every RemoteTrack passes through here once: it learns where to report attachments. */
  adopt(track) {
    track._quality = this;
    this._send(track);
  }

  /** The preferred quality of a remote video track (`null`: the room default). */
  setQuality(track, quality) {
    if (quality !== null && !QUALITIES.includes(quality)) {
      throw new TypeError(`quality must be one of ${QUALITIES.join(', ')} or null`);
    }
    track.preferredQuality = quality;
    this._send(track);
  }

  /** A track started playing in `el` (from `RemoteTrack.attach`). */
  observe(track, el) {
    if (!this.adaptiveStream || track.kind !== 'video' || typeof ResizeObserver === 'undefined') return;
    if (!this._observer) {
      this._observer = new ResizeObserver((entries) => {
        for (const e of entries) {
          const t = this._elements.get(e.target);
          if (t) this._sendSoon(t);
        }
      });
    }
    this._elements.set(el, track);
    this._observer.observe(el);
    this._sendSoon(track);
  }

  /** A track stopped playing in `el`. */
  unobserve(track, el) {
    if (!this._elements.has(el)) return;
    this._elements.delete(el);
    if (this._observer) this._observer.unobserve(el);
    this._sendSoon(track);
  }

  /** The largest rendered size (device pixels) of the elements `track` plays in; null if none shows it. */
  _renderedSize(track) {
    if (!this.adaptiveStream) return null;
    const dpr = (typeof window !== 'undefined' && window.devicePixelRatio) || 1;
    let width = 0;
    let height = 0;
    for (const [el, t] of this._elements) {
      if (t !== track) continue;
      width = Math.max(width, Math.round(el.clientWidth * dpr));
      height = Math.max(height, Math.round(el.clientHeight * dpr));
    }
    return width > 0 && height > 0 ? { width, height } : null;
  }

  _sendSoon(track) {
    clearTimeout(this._timers.get(track.sid));
    this._timers.set(
      track.sid,
      setTimeout(() => {
        this._timers.delete(track.sid);
        this._send(track);
      }, RESIZE_DEBOUNCE_MS),
    );
  }

  /** Sends the preference of every remote track (once joined: tracks known at `joined` were adopted before). */
  sendAll() {
    for (const p of this._room.participants.values()) for (const t of p.tracks.values()) this._send(t);
  }

  _send(track) {
    const state = this._room.state;
    if (!track.sid || track.kind !== 'video' || (state !== 'connected' && state !== 'reconnecting')) return;
    const msg = { type: 'updateSubscription', trackSids: [track.sid] };
    const quality = track.preferredQuality || this.defaultQuality;
    if (quality) msg.quality = quality;
    const size = this._renderedSize(track);
    if (size) Object.assign(msg, size);
    const key = JSON.stringify(msg);
    // Nothing to say while the preference is the server's default (no limit) and was never changed.
    if (this._sent.get(track.sid) === key || (!this._sent.has(track.sid) && !quality && !size)) return;
    this._sent.set(track.sid, key);
    this._signaling.send(msg);
  }

  /** `streamState`: the server paused or resumed a track for bandwidth. */
  onStreamState(msg) {
    const track = this._findTrack(msg.trackSid);
    if (!track) return;
    track.streamPaused = !!msg.paused;
    this._room.emit('streamStateChanged', { track, paused: track.streamPaused, reason: msg.reason });
  }

  /** Asks the server for this participant's subscription stats. */
  requestStats() {
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      waiter.timer = setTimeout(() => {
        this._statsWaiters = this._statsWaiters.filter((w) => w !== waiter);
        reject(new Error('no stats from the server'));
      }, STATS_TIMEOUT_MS);
      this._statsWaiters.push(waiter);
      this._signaling.send({ type: 'getStats' });
    });
  }

  /** `stats`: answers the oldest `requestStats`. */
  onStats(msg) {
    const waiter = this._statsWaiters.shift();
    if (!waiter) return;
    clearTimeout(waiter.timer);
    const { type, ...stats } = msg;
    waiter.resolve(stats);
  }

  _findTrack(sid) {
    for (const p of this._room.participants.values()) {
      const t = p.tracks.get(sid);
      if (t) return t;
    }
    return null;
  }
}
