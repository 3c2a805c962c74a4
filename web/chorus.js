/**
 * Chorus browser SDK — one ES module, no build step, no dependencies.
 *
 * The Chorus server serves this file at `/sdk/chorus.js`. It speaks the signaling protocol in
 * `docs/protocol.md` (version 1) over a WebSocket and uses two RTCPeerConnections per participant:
 * a *publisher* connection (this client makes every offer) and a *subscriber* connection (the server
 * makes every offer, this client answers).
 *
 * @example
 * import { Room } from '/sdk/chorus.js';
 * const room = new Room();
 * room.on('trackSubscribed', (track) => document.body.append(track.attach()));
 * room.on('participantLeft', (p) => console.log(p.identity, 'left'));
 * await room.connect('ws://127.0.0.1:7880/rtc', token);   // rejects with a ChorusError (.code)
 * await room.publishTracks({ video: true, audio: true }); // camera (simulcast q/h/f) + microphone
 * room.setMuted('microphone', true);
 * await room.leave();
 *
 * API
 * - `new Room({debug?, logger?})`
 * - `room.connect(wsUrl, token, {autoSubscribe = true, timeoutMs = 15000})` → Promise; resolves on
 *   `joined`, rejects with a `ChorusError` carrying `.code` (`unauthorized`, `token_expired`,
 *   `room_full`, `connection_failed`, …).
 * - `room.publishCamera()`, `room.publishMicrophone()`, `room.publishTracks({video, audio})` →
 *   Promise<LocalTrack[]> once the server has answered (the tracks then have their `sid`).
 *   `room.publishTrack(mediaStreamTrack, {source, name, simulcast})` for a track you already have.
 * - `room.unpublish(trackSid | 'camera' | 'microphone')`, `room.setMuted(trackSid | 'camera' |
 *   'microphone', muted)`, `room.setSubscribed(trackSids, subscribe)`.
 * - `room.leave()` → Promise; sends `leave`, waits briefly for `left`, closes everything.
 * - `room.getRemoteStats()` → Promise<{[participantSid]: {sid, identity, videoFramesDecoded, …}}>
 *   from the subscriber connection's `getStats()`; `room.getLocalStats()` likewise for what we send.
 * - State: `room.state` (`disconnected | connecting | connected | reconnecting`), `room.roomInfo`
 *   (`{name, sid}`), `room.localParticipant`, `room.participants` (Map sid → RemoteParticipant).
 *
 * Events (`room.on(name, fn)` / `room.off(name, fn)`); the participants present when `connect`
 * resolves are already in `room.participants` and get no `participantJoined`:
 * - `participantJoined(participant)`, `participantLeft(participant, reason)`
 * - `trackPublished(remoteTrack)`, `trackUnpublished(remoteTrack)` — announced by the server
 * - `trackSubscribed(remoteTrack)`, `trackUnsubscribed(remoteTrack)` — media starts/stops arriving
 * - `trackMuted({participant, trackSid, muted, track})` — a remote track was (un)muted
 * - `localTrackPublished(localTrack)` — the server gave one of our tracks its sid
 * - `reconnecting()`, `reconnected()` — the WebSocket dropped and was resumed
 * - `disconnected({reason})` — final; `error(error)` — non-fatal problems, for logging
 *
 * Objects
 * - RemoteParticipant `{sid, identity, name, tracks: Map<trackSid, RemoteTrack>}`
 * - RemoteTrack `{sid, kind, source, name, muted, layers, participant, mid, subscribed,
 *   mediaStreamTrack, attach(element?) → element, detach(element?)}`; `mediaStreamTrack` is set while
 *   subscribed.
 * - LocalParticipant `{sid, identity, name, tracks: Map<trackSid, LocalTrack>}`
 * - LocalTrack `{sid, kind, source, name, muted, layers, mid, mediaStreamTrack, attach(element?)}`
 */

const PROTOCOL_LOG_PREFIX = '[chorus]';

const SIMULCAST_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 1700000 },
];

/** An error from the server (`code` is the protocol's stable error code) or from the SDK itself. */
export class ChorusError extends Error {
  constructor(code, message, fatal = false) {
    super(message || code);
    this.name = 'ChorusError';
    this.code = code;
    this.fatal = fatal;
  }
}

/** A minimal event emitter; a throwing listener is logged, never breaks the SDK. */
class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Adds `fn` for `event`; returns `this`. */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return this;
  }

  /** Removes `fn` (or every listener of `event` when `fn` is omitted); returns `this`. */
  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) {
      if (fn) set.delete(fn);
      else set.clear();
    }
    return this;
  }

  /** Like `on`, but only once. */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn(...args);
    };
    return this.on(event, wrapper);
  }

  emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        console.error(PROTOCOL_LOG_PREFIX, `listener for "${event}" threw`, err);
      }
    }
  }
}

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
    this._attached = new Set();
    this._update(info);
  }

  _update(info) {
    this.kind = info.kind;
    this.source = info.source || 'unknown';
    this.name = info.name || '';
    this.muted = !!info.muted;
    this.layers = info.layers || [];
  }

  /** Plays the track in `element` (or a new <video>/<audio>) and returns that element. */
  attach(element) {
    return attachTo(this.mediaStreamTrack, this.kind, element, this._attached);
  }

  /** Stops playing in `element`, or in every attached element; returns the detached elements. */
  detach(element) {
    const els = element ? [element] : [...this._attached];
    for (const el of els) {
      el.srcObject = null;
      this._attached.delete(el);
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
    return RemoteTrack.prototype.detach.call(this, element);
  }
}

/** Another participant in the room. */
export class RemoteParticipant {
  constructor(info) {
    this.sid = info.sid;
    this.tracks = new Map();
    this.identity = info.identity;
    this.name = info.name || '';
  }
}

/** This client, once joined. */
export class LocalParticipant {
  constructor(info) {
    this.sid = info.sid;
    this.identity = info.identity;
    this.name = info.name || '';
    this.tracks = new Map();
  }
}

/** A connection to one Chorus room. */
export class Room extends Emitter {
  /**
   * @param {{debug?: boolean, logger?: {log: Function, warn: Function, error: Function}}} [options]
   *   `debug` logs every signaling message (SDP abbreviated).
   */
  constructor(options = {}) {
    super();
    this.debug = !!options.debug;
    this.logger = options.logger || console;
    this.state = 'disconnected';
    this.roomInfo = null;
    this.localParticipant = null;
    /** @type {Map<string, RemoteParticipant>} */
    this.participants = new Map();
    this.localTracks = []; // every LocalTrack, including those still waiting for a sid
    this._reset();
  }

  _reset() {
    this._ws = null;
    this._wsUrl = null;
    this._token = null;
    this._autoSubscribe = true;
    this._publisher = null;
    this._subscriber = null;
    this._resumeToken = null;
    this._resumeWindowSecs = 10;
    this._pingIntervalSecs = 10;
    this._pingTimer = null;
    this._lastReceived = 0;
    this._outbox = []; // messages held while the WebSocket is being resumed
    this._pubWaiters = []; // renegotiation requests not yet in an offer
    this._pubInFlight = null; // {waiters, message} for the offer awaiting its answer
    this._subChain = Promise.resolve();
    this._subMids = new Map(); // mid -> {trackSid, participantSid}, from the latest server offer
    this._subBound = new Map(); // mid -> RemoteTrack we emitted trackSubscribed for
    this._trickleReady = { publisher: false, subscriber: false };
    this._trickleQueue = { publisher: [], subscriber: [] };
    this._leaving = false;
    this._leftWaiter = null;
  }

  // ---------------------------------------------------------------------------------------------
  // Connecting, resuming, leaving

  /**
   * Opens `wsUrl`, joins with `token` and resolves with this room once the server says `joined`.
   * @param {string} wsUrl e.g. `ws://127.0.0.1:7880/rtc`
   * @param {string} token an access token (JWT)
   * @param {{autoSubscribe?: boolean, timeoutMs?: number}} [options]
   */
  async connect(wsUrl, token, { autoSubscribe = true, timeoutMs = 15000 } = {}) {
    if (this.state !== 'disconnected') throw new ChorusError('invalid_state', `cannot connect while ${this.state}`);
    this._reset();
    this.participants = new Map();
    this.localTracks = [];
    this._wsUrl = wsUrl;
    this._token = token;
    this._autoSubscribe = autoSubscribe;
    this.state = 'connecting';
    const join = { type: 'join', token };
    if (!autoSubscribe) join.autoSubscribe = false;
    try {
      const joined = await this._openAndJoin(join, 'joined', timeoutMs);
      if (this.state !== 'connecting') {
        // leave() was called while joining.
        this._rawSend(this._ws, { type: 'leave' });
        throw new ChorusError('disconnected', 'left while connecting');
      }
      this._onJoined(joined);
      return this;
    } catch (err) {
      this._teardown();
      this.state = 'disconnected';
      throw err;
    }
  }

  /**
   * Opens a WebSocket, sends `join` and waits for `expectType` (`joined`/`resumed`). Messages after it
   * go to the normal handler. Rejects on a server `error`, a close, or the timeout.
   */
  _openAndJoin(join, expectType, timeoutMs) {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this._wsUrl);
      } catch (err) {
        reject(new ChorusError('connection_failed', `cannot open ${this._wsUrl}: ${err.message}`));
        return;
      }
      let settled = false;
      const timer = setTimeout(
        () => fail(new ChorusError('timeout', `no ${expectType} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch (_) {
          /* already closed */
        }
        reject(err);
      };
      ws.onopen = () => this._rawSend(ws, join);
      ws.onerror = () => {}; // a close event always follows with the details we have
      ws.onclose = (ev) =>
        fail(
          new ChorusError(
            'connection_failed',
            `WebSocket closed before ${expectType} (code ${ev.code}${ev.reason ? `, ${ev.reason}` : ''})`,
          ),
        );
      ws.onmessage = (ev) => {
        const msg = this._parse(ev.data);
        if (!msg) return;
        if (msg.type === 'error') {
          if (msg.fatal) fail(new ChorusError(msg.code, msg.message, true));
          else this._reportError(new ChorusError(msg.code, msg.message));
          return;
        }
        if (msg.type !== expectType) {
          this._log('warn', `ignoring ${msg.type} before ${expectType}`);
          return;
        }
        settled = true;
        clearTimeout(timer);
        this._adoptSocket(ws);
        resolve(msg);
      };
    });
  }

  _adoptSocket(ws) {
    this._ws = ws;
    this._lastReceived = Date.now();
    ws.onmessage = (ev) => this._onMessage(ev.data);
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._onSocketClosed(`WebSocket closed (code ${ev.code}${ev.reason ? `, ${ev.reason}` : ''})`);
    };
  }

  _onJoined(msg) {
    this._applySessionInfo(msg);
    this.localParticipant = new LocalParticipant(msg.participant);
    for (const info of msg.participants || []) this._addParticipant(info);
    const iceServers = (msg.iceServers || []).map((s) => ({
      urls: s.urls,
      username: s.username,
      credential: s.credential,
    }));
    this._publisher = this._createPeerConnection('publisher', iceServers);
    this._subscriber = this._createPeerConnection('subscriber', iceServers);
    this._subscriber.ontrack = () => this._reconcileSubscriptions();
    this.state = 'connected';
    this._startKeepalive();
  }

  _applySessionInfo(msg) {
    this.roomInfo = msg.room || this.roomInfo;
    this._resumeToken = msg.resumeToken;
    if (msg.resumeWindowSecs > 0) this._resumeWindowSecs = msg.resumeWindowSecs;
    if (msg.pingIntervalSecs > 0) this._pingIntervalSecs = msg.pingIntervalSecs;
  }

  _createPeerConnection(target, iceServers) {
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    pc.onicecandidate = (ev) => {
      // `null` (and Chrome's empty-string candidate) both mean end of candidates: send "".
      const candidate = ev.candidate && ev.candidate.candidate ? ev.candidate.candidate : '';
      const msg = { type: 'candidate', target, candidate };
      if (this._trickleReady[target]) this._send(msg);
      else this._trickleQueue[target].push(msg);
    };
    pc.onconnectionstatechange = () => {
      this._log('log', `${target} connection ${pc.connectionState}`);
      if (pc.connectionState === 'failed' && this.state !== 'disconnected') {
        this._reportError(new ChorusError('connection_failed', `${target} peer connection failed`));
      }
    };
    return pc;
  }

  _flushTrickle(target) {
    this._trickleReady[target] = true;
    const queued = this._trickleQueue[target];
    this._trickleQueue[target] = [];
    for (const msg of queued) this._send(msg);
  }

  _startKeepalive() {
    clearInterval(this._pingTimer);
    const intervalMs = this._pingIntervalSecs * 1000;
    this._pingTimer = setInterval(() => {
      if (this.state !== 'connected' || !this._ws) return;
      if (Date.now() - this._lastReceived > 3 * intervalMs) {
        // The server answers every ping; three silent intervals mean the connection is gone.
        this._onSocketClosed('no message from the server for three ping intervals');
        return;
      }
      this._send({ type: 'ping', timestamp: Date.now() });
    }, intervalMs);
  }

  _onSocketClosed(why) {
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch (_) {
        /* already closed */
      }
    }
    if (this.state !== 'connected' || this._leaving) {
      if (this._leaving && this._leftWaiter) this._leftWaiter();
      return;
    }
    this._log('warn', `${why}; resuming`);
    this._resume();
  }

  async _resume() {
    this.state = 'reconnecting';
    this._trickleReady = { publisher: false, subscriber: false };
    this.emit('reconnecting');
    const deadline = Date.now() + this._resumeWindowSecs * 1000;
    let delay = 250;
    while (this.state === 'reconnecting') {
      const join = {
        type: 'join',
        token: this._token,
        resume: { participantSid: this.localParticipant.sid, resumeToken: this._resumeToken },
      };
      if (!this._autoSubscribe) join.autoSubscribe = false;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        const resumed = await this._openAndJoin(join, 'resumed', Math.min(remaining, 5000));
        if (this.state !== 'reconnecting') {
          // leave() was called meanwhile: say so, so the server does not wait out the resume window.
          const ws = this._ws;
          this._ws = null;
          try {
            this._rawSend(ws, { type: 'leave' });
            ws.close();
          } catch (_) {
            /* ignore */
          }
          return;
        }
        this._onResumed(resumed);
        return;
      } catch (err) {
        if (err.fatal) {
          this._log('warn', `resume refused: ${err.code} ${err.message}`);
          this._finish(err.code);
          return;
        }
        this._log('warn', `resume attempt failed: ${err.message}`);
      }
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
      delay = Math.min(delay * 2, 2000);
    }
    if (this.state === 'reconnecting') this._finish('resume_timeout');
  }

  _onResumed(msg) {
    this._applySessionInfo(msg);
    if (msg.participant) {
      this.localParticipant.name = msg.participant.name || this.localParticipant.name;
    }
    this._reconcileParticipants(msg.participants || []);
    this.state = 'connected';
    this._startKeepalive();
    // Candidates and other messages held while the socket was down.
    this._flushTrickle('publisher');
    this._flushTrickle('subscriber');
    const outbox = this._outbox;
    this._outbox = [];
    for (const m of outbox) this._send(m);
    // The answer to an offer in flight may have been lost with the old socket: offer afresh (valid
    // whether or not the server applied the old one).
    if (this._pubInFlight) this._restartPublisherOffer();
    this._reconcileSubscriptions();
    this.emit('reconnected');
  }

  /** Brings `participants` in line with the room as the server sees it now, emitting the differences. */
  _reconcileParticipants(infos) {
    const seen = new Set();
    for (const info of infos) {
      seen.add(info.sid);
      const existing = this.participants.get(info.sid);
      if (!existing) {
        const p = this._addParticipant(info);
        this.emit('participantJoined', p);
        for (const t of p.tracks.values()) this.emit('trackPublished', t);
        continue;
      }
      existing.identity = info.identity;
      existing.name = info.name || '';
      const trackSids = new Set();
      for (const ti of info.tracks || []) {
        trackSids.add(ti.sid);
        const t = existing.tracks.get(ti.sid);
        if (!t) {
          const nt = new RemoteTrack(ti, existing);
          existing.tracks.set(ti.sid, nt);
          this.emit('trackPublished', nt);
        } else {
          const wasMuted = t.muted;
          t._update(ti);
          if (wasMuted !== t.muted)
            this.emit('trackMuted', { participant: existing, trackSid: t.sid, muted: t.muted, track: t });
        }
      }
      for (const [sid, t] of [...existing.tracks]) {
        if (!trackSids.has(sid)) {
          existing.tracks.delete(sid);
          this._reconcileSubscriptions();
          this.emit('trackUnpublished', t);
        }
      }
    }
    for (const p of [...this.participants.values()]) {
      if (!seen.has(p.sid)) this._removeParticipant(p.sid, 'left while reconnecting');
    }
  }

  /** Leaves the room: sends `leave`, waits up to a second for `left`, closes everything. */
  async leave() {
    if (this.state === 'disconnected') return;
    this._leaving = true;
    if (this.state === 'connecting') {
      this.state = 'disconnected'; // connect() notices, says `leave` and rejects
      return;
    }
    const ws = this._ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      const gone = new Promise((resolve) => {
        this._leftWaiter = resolve;
        setTimeout(resolve, 1000);
      });
      this._rawSend(ws, { type: 'leave' });
      await gone;
    }
    this._finish('left');
  }

  /** Final cleanup; emits `disconnected` once. */
  _finish(reason) {
    if (this.state === 'disconnected') return;
    this._teardown();
    this.state = 'disconnected';
    for (const p of this.participants.values()) {
      for (const t of p.tracks.values()) {
        t.detach();
        t.subscribed = false;
        t.mediaStreamTrack = null;
      }
    }
    this.emit('disconnected', { reason });
  }

  _teardown() {
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch (_) {
        /* ignore */
      }
    }
    for (const pc of [this._publisher, this._subscriber]) {
      if (pc) {
        pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = null;
        pc.close();
      }
    }
    this._publisher = this._subscriber = null;
    for (const t of this.localTracks) t.mediaStreamTrack.stop();
    const err = new ChorusError('disconnected', 'the room was disconnected');
    for (const w of this._pubWaiters) w.reject(err);
    if (this._pubInFlight) for (const w of this._pubInFlight.waiters) w.reject(err);
    this._pubWaiters = [];
    this._pubInFlight = null;
    this._subBound.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // Sending

  _rawSend(ws, msg) {
    if (this.debug) this._log('log', '→', describe(msg));
    ws.send(JSON.stringify(msg));
  }

  _send(msg) {
    const ws = this._ws;
    if (ws && ws.readyState === WebSocket.OPEN && this.state === 'connected') {
      this._rawSend(ws, msg);
    } else if (this.state === 'reconnecting' || this.state === 'connected') {
      if (msg.type !== 'ping' && msg.type !== 'candidate') this._outbox.push(msg);
      else if (msg.type === 'candidate') this._trickleQueue[msg.target].push(msg);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Receiving

  _parse(data) {
    if (typeof data !== 'string') {
      this._log('warn', 'ignoring a binary frame');
      return null;
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (err) {
      this._reportError(new ChorusError('bad_message', `unparsable message from server: ${err.message}`));
      return null;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') {
      this._reportError(new ChorusError('bad_message', 'message without a type'));
      return null;
    }
    if (this.debug) this._log('log', '←', describe(msg));
    return msg;
  }

  _onMessage(data) {
    this._lastReceived = Date.now();
    const msg = this._parse(data);
    if (!msg) return;
    try {
      const pending = this._dispatch(msg);
      if (pending && typeof pending.catch === 'function') pending.catch((err) => this._reportError(err));
    } catch (err) {
      this._reportError(err);
    }
  }

  _dispatch(msg) {
    switch (msg.type) {
      case 'pong':
        return;
      case 'answer':
        return this._onPublisherAnswer(msg);
      case 'tracksAssigned':
        return this._onTracksAssigned(msg);
      case 'offer':
        this._subChain = this._subChain.then(() => this._onSubscriberOffer(msg)).catch((err) => this._reportError(err));
        return;
      case 'candidate':
        return this._onRemoteCandidate(msg);
      case 'participantJoined': {
        const info = msg.participant;
        if (!info || (this.localParticipant && info.sid === this.localParticipant.sid)) return;
        if (this.participants.has(info.sid)) {
          this._reconcileParticipants([...this._participantInfos().filter((p) => p.sid !== info.sid), info]);
          return;
        }
        const p = this._addParticipant(info);
        this.emit('participantJoined', p);
        for (const t of p.tracks.values()) this.emit('trackPublished', t);
        this._reconcileSubscriptions();
        return;
      }
      case 'participantLeft':
        this._removeParticipant(msg.participantSid, msg.reason || '');
        return;
      case 'trackPublished': {
        const p = this.participants.get(msg.participantSid);
        if (!p || !msg.track) return;
        let t = p.tracks.get(msg.track.sid);
        if (t) t._update(msg.track);
        else {
          t = new RemoteTrack(msg.track, p);
          p.tracks.set(t.sid, t);
        }
        this.emit('trackPublished', t);
        this._reconcileSubscriptions();
        return;
      }
      case 'trackUnpublished': {
        const p = this.participants.get(msg.participantSid);
        const t = p && p.tracks.get(msg.trackSid);
        if (!t) return;
        p.tracks.delete(msg.trackSid);
        this._reconcileSubscriptions();
        this.emit('trackUnpublished', t);
        return;
      }
      case 'trackMuted': {
        const p = this.participants.get(msg.participantSid);
        const t = p && p.tracks.get(msg.trackSid);
        if (t) t.muted = !!msg.muted;
        if (p)
          this.emit('trackMuted', { participant: p, trackSid: msg.trackSid, muted: !!msg.muted, track: t || null });
        return;
      }
      case 'left':
        this._log('log', `server ended the session: ${msg.reason}`);
        this._leaving = true;
        if (this._leftWaiter) this._leftWaiter();
        this._finish(msg.reason || 'left');
        return;
      case 'error':
        return this._onServerError(msg);
      case 'joined':
      case 'resumed':
        this._log('warn', `unexpected ${msg.type}`);
        return;
      default:
        this._log('log', `ignoring unknown message type ${msg.type}`);
    }
  }

  _participantInfos() {
    return [...this.participants.values()].map((p) => ({
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

  _onServerError(msg) {
    const err = new ChorusError(msg.code, msg.message, !!msg.fatal);
    // Errors carry no request id; a negotiation error while our offer is pending is about that offer.
    if (this._pubInFlight && (msg.code === 'negotiation_failed' || msg.code === 'permission_denied')) {
      this._failPublisherOffer(err);
    }
    this._reportError(err);
    if (msg.fatal) this._finish(msg.code);
  }

  _addParticipant(info) {
    const p = new RemoteParticipant(info);
    for (const ti of info.tracks || []) p.tracks.set(ti.sid, new RemoteTrack(ti, p));
    this.participants.set(p.sid, p);
    return p;
  }

  _removeParticipant(sid, reason) {
    const p = this.participants.get(sid);
    if (!p) return;
    this.participants.delete(sid);
    this._reconcileSubscriptions(); // emits trackUnsubscribed for its tracks
    this.emit('participantLeft', p, reason);
  }

  _onRemoteCandidate(msg) {
    const pc = msg.target === 'publisher' ? this._publisher : this._subscriber;
    if (!pc || !msg.candidate) return;
    pc.addIceCandidate({ candidate: msg.candidate, sdpMLineIndex: 0 }).catch((err) =>
      this._log('warn', `addIceCandidate(${msg.target}) failed: ${err.message}`),
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Publishing

  /** getUserMedia for the camera (1280x720) and publishes it with three simulcast layers. */
  async publishCamera() {
    return (await this.publishTracks({ video: true, audio: false }))[0];
  }

  /** getUserMedia for the microphone and publishes it. */
  async publishMicrophone() {
    return (await this.publishTracks({ video: false, audio: true }))[0];
  }

  /**
   * getUserMedia for the camera and/or microphone and publishes what it got in one offer.
   * @param {{video?: boolean|MediaTrackConstraints, audio?: boolean|MediaTrackConstraints}} [what]
   * @returns {Promise<LocalTrack[]>} once the server has answered
   */
  async publishTracks({ video = true, audio = true } = {}) {
    this._requireConnected();
    const constraints = {
      video: video === true ? { width: { ideal: 1280 }, height: { ideal: 720 } } : video || false,
      audio: audio || false,
    };
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    const tracks = [];
    for (const mst of stream.getVideoTracks())
      tracks.push(this._addLocalTrack(mst, { source: 'camera', name: 'camera', simulcast: true }));
    for (const mst of stream.getAudioTracks())
      tracks.push(this._addLocalTrack(mst, { source: 'microphone', name: 'microphone', simulcast: false }));
    await this._renegotiate();
    return tracks;
  }

  /**
   * Publishes a MediaStreamTrack you already have (e.g. from getDisplayMedia).
   * @param {MediaStreamTrack} mediaStreamTrack
   * @param {{source?: string, name?: string, simulcast?: boolean}} [options] simulcast defaults to
   *   true for video
   */
  async publishTrack(mediaStreamTrack, { source, name, simulcast } = {}) {
    this._requireConnected();
    const isVideo = mediaStreamTrack.kind === 'video';
    const track = this._addLocalTrack(mediaStreamTrack, {
      source: source || (isVideo ? 'camera' : 'microphone'),
      name: name || mediaStreamTrack.label || mediaStreamTrack.kind,
      simulcast: simulcast === undefined ? isVideo : simulcast && isVideo,
    });
    await this._renegotiate();
    return track;
  }

  _addLocalTrack(mst, { source, name, simulcast }) {
    const init = { direction: 'sendonly' };
    if (simulcast) init.sendEncodings = SIMULCAST_ENCODINGS.map((e) => ({ ...e }));
    const transceiver = this._publisher.addTransceiver(mst, init);
    const track = new LocalTrack(mst, transceiver, {
      source,
      name,
      layers: simulcast ? SIMULCAST_ENCODINGS.map((e) => e.rid) : [],
    });
    this.localTracks.push(track);
    return track;
  }

  /** Stops publishing a local track (by sid, LocalTrack, or source `camera`/`microphone`). */
  async unpublish(which) {
    const track = this._findLocalTrack(which);
    if (!track) throw new ChorusError('unknown_track', `no local track ${which}`);
    this.localTracks = this.localTracks.filter((t) => t !== track);
    if (track.sid) {
      this.localParticipant.tracks.delete(track.sid);
      this._send({ type: 'unpublish', trackSid: track.sid });
    }
    track.mediaStreamTrack.stop();
    try {
      await track.transceiver.sender.replaceTrack(null);
      track.transceiver.direction = 'inactive';
    } catch (err) {
      this._log('warn', `could not deactivate transceiver: ${err.message}`);
    }
    await this._renegotiate();
  }

  /**
   * Mutes or unmutes a local track: `track.enabled = !muted` and a `mute` message.
   * @param {string|LocalTrack} which a track sid, a LocalTrack, or `camera` / `microphone`
   */
  setMuted(which, muted) {
    const track = this._findLocalTrack(which);
    if (!track) throw new ChorusError('unknown_track', `no local track ${which}`);
    track.muted = !!muted;
    track.mediaStreamTrack.enabled = !muted;
    // Before the sid is known, the next offer carries `muted`.
    if (track.sid) this._send({ type: 'mute', trackSid: track.sid, muted: !!muted });
    return track;
  }

  /** Subscribes to or unsubscribes from remote tracks (all are subscribed by default). */
  setSubscribed(trackSids, subscribe) {
    this._requireConnected();
    this._send({ type: 'subscribe', trackSids: [].concat(trackSids), subscribe: !!subscribe });
  }

  _findLocalTrack(which) {
    if (which instanceof LocalTrack) return which;
    return this.localTracks.find((t) => t.sid === which) || this.localTracks.find((t) => t.source === which);
  }

  _requireConnected() {
    if (!this._publisher || (this.state !== 'connected' && this.state !== 'reconnecting')) {
      throw new ChorusError('invalid_state', `not connected (${this.state})`);
    }
  }

  /** Asks for a publisher offer; resolves when an offer made after this call has been answered. */
  _renegotiate() {
    return new Promise((resolve, reject) => {
      this._pubWaiters.push({ resolve, reject });
      if (!this._pubInFlight) this._sendPublisherOffer();
    });
  }

  async _sendPublisherOffer() {
    const waiters = this._pubWaiters;
    this._pubWaiters = [];
    const inFlight = { waiters, message: null };
    this._pubInFlight = inFlight;
    try {
      const pc = this._publisher;
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (this._pubInFlight !== inFlight) return; // torn down meanwhile
      const tracks = [];
      for (const t of this.localTracks) {
        const tr = t.transceiver;
        if (!tr || tr.mid == null || tr.currentDirection === 'stopped' || !tr.sender.track) continue;
        const entry = { mid: tr.mid, kind: t.kind, source: t.source, name: t.name, muted: t.muted };
        t._offeredMuted = t.muted;
        if (t.layers.length) entry.layers = t.layers;
        tracks.push(entry);
      }
      inFlight.message = { type: 'offer', sdp: pc.localDescription.sdp, tracks };
      this._send(inFlight.message);
      this._flushTrickle('publisher');
    } catch (err) {
      this._failPublisherOffer(
        err instanceof ChorusError
          ? err
          : new ChorusError('negotiation_failed', `creating the offer failed: ${err.message}`),
      );
    }
  }

  async _onPublisherAnswer(msg) {
    const inFlight = this._pubInFlight;
    if (!inFlight || !this._publisher || this._publisher.signalingState !== 'have-local-offer') {
      this._log('warn', 'ignoring an answer with no offer pending');
      return;
    }
    try {
      await this._publisher.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
    } catch (err) {
      this._failPublisherOffer(new ChorusError('negotiation_failed', `applying the answer failed: ${err.message}`));
      return;
    }
    if (this._pubInFlight !== inFlight) return;
    this._pubInFlight = null;
    for (const w of inFlight.waiters) w.resolve();
    if (this._pubWaiters.length) this._sendPublisherOffer();
  }

  async _restartPublisherOffer() {
    const inFlight = this._pubInFlight;
    this._pubInFlight = null;
    if (inFlight) this._pubWaiters = inFlight.waiters.concat(this._pubWaiters);
    if (this._publisher && this._publisher.signalingState === 'have-local-offer') {
      try {
        await this._publisher.setLocalDescription({ type: 'rollback' });
      } catch (_) {
        /* nothing to roll back */
      }
    }
    if (this._pubWaiters.length && this._publisher && !this._pubInFlight) this._sendPublisherOffer();
  }

  async _failPublisherOffer(err) {
    const inFlight = this._pubInFlight;
    this._pubInFlight = null;
    if (this._publisher && this._publisher.signalingState === 'have-local-offer') {
      try {
        await this._publisher.setLocalDescription({ type: 'rollback' });
      } catch (_) {
        /* nothing to roll back */
      }
    }
    if (inFlight) for (const w of inFlight.waiters) w.reject(err);
    if (this._pubWaiters.length && this._publisher) this._sendPublisherOffer();
  }

  _onTracksAssigned(msg) {
    for (const { mid, trackSid } of msg.tracks || []) {
      const track = this.localTracks.find((t) => t.mid === mid);
      if (!track) {
        this._log('warn', `tracksAssigned for unknown mid ${mid}`);
        continue;
      }
      if (track.sid === trackSid) continue;
      if (track.sid) this.localParticipant.tracks.delete(track.sid);
      track.sid = trackSid;
      this.localParticipant.tracks.set(trackSid, track);
      // setMuted() while the offer was in flight: the server only knows the offered state.
      if (track._offeredMuted !== undefined && track._offeredMuted !== track.muted) {
        this._send({ type: 'mute', trackSid, muted: track.muted });
      }
      this.emit('localTrackPublished', track);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Subscribing

  async _onSubscriberOffer(msg) {
    const pc = this._subscriber;
    if (!pc) return;
    const mids = new Map();
    for (const t of msg.tracks || [])
      mids.set(String(t.mid), { trackSid: t.trackSid, participantSid: t.participantSid });
    this._subMids = mids; // ontrack (fired inside setRemoteDescription) binds with the new map
    this._trickleReady.subscriber = false;
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (this._subscriber !== pc) return;
    this._send({ type: 'answer', sdp: pc.localDescription.sdp });
    this._flushTrickle('subscriber');
    this._reconcileSubscriptions();
  }

  /**
   * Makes the set of subscribed RemoteTracks match the latest server offer and the known
   * participants: emits trackUnsubscribed for mids that ended or changed, trackSubscribed for mids
   * whose track is known and has a receiver. Idempotent.
   */
  _reconcileSubscriptions() {
    for (const [mid, track] of [...this._subBound]) {
      const a = this._subMids.get(mid);
      const p = this.participants.get(track.participant.sid);
      if (!a || a.trackSid !== track.sid || !p || p.tracks.get(track.sid) !== track) {
        this._subBound.delete(mid);
        track.detach();
        track.subscribed = false;
        track.mediaStreamTrack = null;
        track.mid = null;
        this.emit('trackUnsubscribed', track);
      }
    }
    const pc = this._subscriber;
    if (!pc) return;
    for (const tr of pc.getTransceivers()) {
      const mid = tr.mid;
      if (mid == null || this._subBound.has(mid)) continue;
      const a = this._subMids.get(mid);
      if (!a) continue;
      const p = this.participants.get(a.participantSid);
      const track = p && p.tracks.get(a.trackSid);
      if (!track || track.subscribed || !tr.receiver.track) continue; // bound later, once announced
      this._subBound.set(mid, track);
      track.mid = mid;
      track.subscribed = true;
      track.mediaStreamTrack = tr.receiver.track;
      this.emit('trackSubscribed', track);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Statistics

  /**
   * Inbound media per remote participant, from the subscriber connection's getStats().
   * @returns {Promise<Object<string, {sid: string, identity: string, videoFramesDecoded: number,
   *   videoFramesReceived: number, videoBytesReceived: number, videoPacketsReceived: number,
   *   videoPacketsLost: number, videoKeyFramesDecoded: number, videoPliCount: number,
   *   videoNackCount: number, videoFreezeCount: number, audioPacketsReceived: number, audioBytesReceived: number,
   *   audioPacketsLost: number, frameWidth: number, frameHeight: number}>>} keyed by participant sid
   */
  async getRemoteStats() {
    const out = {};
    for (const p of this.participants.values()) out[p.sid] = emptyStats(p);
    const pc = this._subscriber;
    if (!pc) return out;
    const midByTrackId = new Map();
    for (const tr of pc.getTransceivers())
      if (tr.mid != null && tr.receiver.track) midByTrackId.set(tr.receiver.track.id, tr.mid);
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const mid = s.mid != null ? String(s.mid) : midByTrackId.get(s.trackIdentifier);
      const a = mid != null && this._subMids.get(mid);
      if (!a) return;
      const p = this.participants.get(a.participantSid);
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

  /** What the publisher connection sends: one entry per outbound RTP stream (per simulcast rid). */
  async getLocalStats() {
    const pc = this._publisher;
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
      });
    });
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // Diagnostics

  _reportError(err) {
    this._log('error', err && err.code ? `${err.code}: ${err.message}` : err);
    this.emit('error', err);
  }

  _log(level, ...args) {
    try {
      (this.logger[level] || this.logger.log).call(this.logger, PROTOCOL_LOG_PREFIX, ...args);
    } catch (_) {
      /* a broken logger must not break the SDK */
    }
  }
}

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

/** A one-line summary of a signaling message for debug logs (SDP and tokens abbreviated). */
function describe(msg) {
  const copy = { ...msg };
  if (typeof copy.sdp === 'string') copy.sdp = `<${copy.sdp.length} bytes of SDP>`;
  if (typeof copy.token === 'string') copy.token = `<token ${copy.token.length} chars>`;
  if (typeof copy.resumeToken === 'string') copy.resumeToken = '<resumeToken>';
  if (copy.resume) copy.resume = { ...copy.resume, resumeToken: '<resumeToken>' };
  return JSON.stringify(copy);
}
