/**
 * Chorus SDK — `Room`, the public facade: one connection to one room. It owns the room's state
 * (`state`, `roomInfo`, `localParticipant`, `participants`, `localTracks`), the lifecycle (connect, resume,
 * rejoin (`rejoin.js`), leave, teardown), and the public API; `dispatch.js` routes each server message to the
 * part that handles it.
 *
 * The work is done by its parts: `signaling.js` (the WebSocket), `publisher.js` and `subscriber.js` (the two
 * peer connections), `data.js` (data channels), `roster.js` (remote participants), `stats.js`. The API reference is in `chorus.js`.
 */

import { DataChannels } from './data.js';
import { dispatch } from './dispatch.js';
import { Chat } from './chat.js';
import { ChorusError } from './errors.js';
import { Emitter } from './emitter.js';
import { logTo } from './log.js';
import { LocalParticipant, LocalTrack } from './participants.js';
import { reportPath } from './path.js';
import { createPeerConnection } from './peer.js';
import { Publisher, VIDEO_CODECS } from './publisher.js';
import { QualityControl } from './quality.js';
import { rejoin } from './rejoin.js';
import { Roster } from './roster.js';
import { localStats, remoteStats } from './stats.js';
import { Signaling } from './signaling.js';
import { Subscriber } from './subscriber.js';

/** A connection to one Chorus room. */
export class Room extends Emitter {
  /**
   * @param {{debug?: boolean, logger?: {log: Function, warn: Function, error: Function},
   *   defaultQuality?: 'low'|'medium'|'high', adaptiveStream?: boolean, iceTransportPolicy?: 'all'|'relay',
   *   rejoinWindowMs?: number, recoverMedia?: boolean, videoCodec?: 'vp8'|'h264'|'vp9'|'av1'}}
   *   [options]
   *   `debug` logs every signaling message (SDP abbreviated). `defaultQuality` is the receive quality of
   *   remote video unless `setTrackQuality` says otherwise; `adaptiveStream` lets the server send no bigger
   *   layer than the elements a track is attached to show. `iceTransportPolicy: 'relay'` connects through TURN
   *   only (see `docs/connectivity.md`); by default the browser tries UDP, ICE-TCP and TURN together.
   *   `rejoinWindowMs` (default 30000): when a lost session cannot be resumed (its node failed, or the
   *   resume window passed), how long to keep trying to join again as a new session, republishing.
   *   `recoverMedia` (default true): when the server ends the session because its media connection failed
   *   (`mediaFailed`: no ICE traffic for several seconds, e.g. after a network change) and media had been
   *   flowing in it, join again as a new session the same way instead of ending with `disconnected`.
   *   `videoCodec`: the codec to publish video in (simulcast works with each); default the browser's.
   */
  constructor(options = {}) {
    super();
    this.debug = !!options.debug;
    this.logger = options.logger || console;
    this.state = 'disconnected';
    this.roomInfo = null;
    this.localParticipant = null;
    /** @type {Map<string, import('./participants.js').RemoteParticipant>} */
    this.participants = new Map();
    this.localTracks = []; // every LocalTrack, including those still waiting for a sid
    /** Who is talking, loudest first (RemoteParticipants and the LocalParticipant), from `activeSpeakers`. */
    this.activeSpeakers = [];
    this.iceTransportPolicy = options.iceTransportPolicy === 'relay' ? 'relay' : 'all';
    if (options.videoCodec && !(options.videoCodec in VIDEO_CODECS)) {
      throw new TypeError(`videoCodec must be one of ${Object.keys(VIDEO_CODECS).join(', ')}`);
    }
    /** The codec published video prefers (null: the browser's default, VP8 in Chromium). */
    this.videoCodec = options.videoCodec || null;
    /** How long to keep trying to join again when the session cannot be resumed (its node failed). */
    this.rejoinWindowMs = options.rejoinWindowMs > 0 ? options.rejoinWindowMs : 30000;
    this.recoverMedia = options.recoverMedia !== false;
    /** Whether a peer connection of this session has connected (a session that never did is not recovered). */
    this._mediaConnected = false;
    /** How each peer connection reaches the server: {publisher, subscriber} of `selectedPath()` results. */
    this.connectionPath = { publisher: null, subscriber: null };
    this._signaling = new Signaling({
      state: () => this.state,
      debug: () => this.debug,
      log: (level, ...args) => this._log(level, ...args),
      reportError: (err) => this._reportError(err),
      onMessage: (msg) => this._onMessage(msg),
      onLost: (why) => this._onSocketLost(why),
    });
    this._publisher = new Publisher(this, this._signaling);
    this._subscriber = new Subscriber(this, this._signaling);
    this._roster = new Roster(this);
    this._quality = new QualityControl(this, this._signaling);
    this._quality.configure(options);
    this._data = new DataChannels(this);
    /** Text chat in this room (`chat.js`). */
    this.chat = new Chat(this._signaling, () => this.state);
    this._reset();
  }

  /** The signaling WebSocket, while there is one (for diagnostics and tests). */
  get _ws() {
    return this._signaling.ws;
  }

  _reset() {
    this._signaling.reset();
    this._publisher.reset();
    this._subscriber.reset();
    this._quality.reset();
    this._data.reset();
    this.chat.reset();
    this._leaving = false;
    this._leftWaiter = null;
    this.activeSpeakers = [];
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
    this.state = 'connecting';
    try {
      const joined = await this._signaling.join(wsUrl, token, autoSubscribe, timeoutMs);
      if (this.state !== 'connecting') {
        // leave() was called while joining.
        this._signaling.sendNow({ type: 'leave' });
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

  _onJoined(msg) {
    this._applySessionInfo(msg);
    this.localParticipant = new LocalParticipant(msg.participant);
    for (const info of msg.participants || []) this._roster.add(info);
    this._startSession(msg);
    this._publisher.renegotiate().catch((err) => this._reportError(err));
  }

  /**
   * From `joined` (first join or rejoin): new peer connections and data channels, then `connected`. The
   * caller makes the first publisher offer.
   */
  _startSession(msg) {
    const iceServers = (msg.iceServers || []).map((s) => ({
      urls: s.urls,
      username: s.username,
      credential: s.credential,
    }));
    this._mediaConnected = false;
    this._publisher.start(this._createPeerConnection('publisher', iceServers));
    this._subscriber.start(this._createPeerConnection('subscriber', iceServers));
    this.state = 'connected';
    this._signaling.startKeepalive();
    this._quality.sendAll();
    // The data channels go in the first publisher offer, so even a participant that publishes nothing
    // connects its publisher connection and can exchange data.
    this._data.start(this._publisher.pc);
  }

  _applySessionInfo(msg) {
    this.roomInfo = msg.room || this.roomInfo;
    this._signaling.applySessionInfo(msg);
  }

  _createPeerConnection(target, iceServers) {
    const pc = createPeerConnection(target, iceServers, {
      signaling: this._signaling,
      iceTransportPolicy: this.iceTransportPolicy,
      onConnected: () => {
        this._mediaConnected = true;
        reportPath(this, target, pc);
      },
      log: (level, ...args) => this._log(level, ...args),
      onFailed: () => {
        if (this.state !== 'disconnected') {
          this._reportError(new ChorusError('connection_failed', `${target} peer connection failed`));
        }
      },
    });
    return pc;
  }

  /** The signaling socket closed or went silent (signaling has already closed it). */
  _onSocketLost(why) {
    if (this.state !== 'connected' || this._leaving) {
      if (this._leaving && this._leftWaiter) this._leftWaiter();
      return;
    }
    this._log('warn', `${why}; resuming`);
    this._resume();
  }

  async _resume() {
    this.state = 'reconnecting';
    this._signaling.holdCandidates('publisher');
    this._signaling.holdCandidates('subscriber');
    this.emit('reconnecting');
    let resumed = null;
    try {
      resumed = await this._signaling.resume(this.localParticipant.sid, () => this.state === 'reconnecting');
    } catch (err) {
      this._log('warn', `resume refused: ${err.code} ${err.message}`);
      if (err.code !== 'resume_failed') {
        this._finish(err.code);
        return;
      }
    }
    if (resumed) this._onResumed(resumed);
    // The session is gone (its node failed, or the resume window passed): join again as a new one.
    else if (this.state === 'reconnecting') await rejoin(this, this.rejoinWindowMs);
  }

  /**
   * The server ended the session with `reason`. A media failure after media had connected is recovered by
   * joining again as a new session (`recoverMedia`); anything else ends the Room. True if recovering.
   */
  _onEndedByServer(reason) {
    if (reason !== 'mediaFailed' || !this.recoverMedia || !this._mediaConnected || this.state !== 'connected') {
      return false;
    }
    this._log('warn', 'the server ended the session: its media connection failed');
    // The server closes this socket after `left`; nothing is resumed from it.
    this._signaling.close();
    this.state = 'reconnecting';
    this.emit('reconnecting');
    rejoin(this, this.rejoinWindowMs, 'the media connection failed').catch((err) => this._reportError(err));
    return true;
  }

  _onResumed(msg) {
    this._applySessionInfo(msg);
    if (msg.participant) {
      this.localParticipant.name = msg.participant.name || this.localParticipant.name;
    }
    this._roster.reconcile(msg.participants || []);
    this.state = 'connected';
    this._signaling.startKeepalive();
    // Candidates and other messages held while the socket was down.
    this._signaling.releaseCandidates('publisher');
    this._signaling.releaseCandidates('subscriber');
    this._signaling.flushOutbox();
    // The answer to an offer in flight may have been lost with the old socket: offer afresh.
    if (this._publisher.offerInFlight) this._publisher.restartOffer();
    this._subscriber.reconcile();
    this.emit('reconnected', { rejoined: false });
  }

  /** Leaves the room: sends `leave`, waits up to a second for `left`, closes everything. */
  async leave() {
    if (this.state === 'disconnected') return;
    this._leaving = true;
    if (this.state === 'connecting') {
      this.state = 'disconnected'; // connect() notices, says `leave` and rejects
      return;
    }
    if (this._signaling.isOpen()) {
      const gone = new Promise((resolve) => {
        this._leftWaiter = resolve;
        setTimeout(resolve, 1000);
      });
      this._signaling.sendNow({ type: 'leave' });
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
    this._signaling.close();
    const err = new ChorusError('disconnected', 'the room was disconnected');
    this._publisher.close(err);
    this._subscriber.close();
    this.chat.close(err);
    for (const t of this.localTracks) t.mediaStreamTrack.stop();
  }

  // ---------------------------------------------------------------------------------------------
  // Receiving

  _onMessage(msg) {
    try {
      const pending = dispatch(this, msg);
      if (pending && typeof pending.catch === 'function') pending.catch((err) => this._reportError(err));
    } catch (err) {
      this._reportError(err);
    }
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
  async publishTracks(what = {}) {
    this._requireConnected();
    return this._publisher.publishFromDevices(what);
  }

  /**
   * Publishes a MediaStreamTrack you already have (e.g. from getDisplayMedia).
   * @param {MediaStreamTrack} mediaStreamTrack
   * @param {{source?: string, name?: string, simulcast?: boolean}} [options] simulcast defaults to
   *   true for video
   */
  async publishTrack(mediaStreamTrack, options = {}) {
    this._requireConnected();
    return this._publisher.publishTrack(mediaStreamTrack, options);
  }

  /** Stops publishing a local track (by sid, LocalTrack, or source `camera`/`microphone`). */
  async unpublish(which) {
    await this._publisher.unpublish(this._requireLocalTrack(which));
  }

  /**
   * Mutes or unmutes a local track: `track.enabled = !muted` and a `mute` message.
   * @param {string|LocalTrack} which a track sid, a LocalTrack, or `camera` / `microphone`
   */
  setMuted(which, muted) {
    return this._publisher.setMuted(this._requireLocalTrack(which), muted);
  }

  /** Subscribes to or unsubscribes from remote tracks (all are subscribed by default). */
  setSubscribed(trackSids, subscribe) {
    this._requireConnected();
    this._signaling.send({ type: 'subscribe', trackSids: [].concat(trackSids), subscribe: !!subscribe });
  }

  /**
   * The receive quality of a remote video track: `low`, `medium`, `high`, or `null` for the room default.
   * The server sends the best layer within it that the downlink carries.
   */
  setTrackQuality(trackSid, quality) {
    this._requireConnected();
    const track = this._quality._findTrack(trackSid);
    if (!track) throw new ChorusError('unknown_track', `no remote track ${trackSid}`);
    this._quality.setQuality(track, quality);
  }

  // ---------------------------------------------------------------------------------------------
  // Data

  /**
   * Sends application data to everyone else in the room, or only to `to` (identities). The server stamps
   * your identity as `from`; receivers get a `data` event `{payload, from, topic, reliable}` (`payload` is a
   * string if you sent one, else a Uint8Array). Refusals (size, rate, no `canPublishData`) arrive as `error`
   * events with code `data_too_large`, `rate_limited` or `permission_denied`.
   * @param {string|ArrayBuffer|ArrayBufferView} payload
   * @param {{reliable?: boolean, to?: string[], topic?: string}} [options] `reliable` (default true) picks
   *   the ordered, reliable channel; false the unordered one without retransmissions (up to ~1,200 bytes)
   */
  sendData(payload, options = {}) {
    this._requireConnected();
    this._data.send(payload, options);
  }

  /** Whether the reliable (or, with `false`, the lossy) data channel is open: here, and on the server. */
  isDataOpen(reliable = true) {
    return this._data.isOpen(reliable);
  }

  _requireLocalTrack(which) {
    const track =
      which instanceof LocalTrack
        ? which
        : this.localTracks.find((t) => t.sid === which) || this.localTracks.find((t) => t.source === which);
    if (!track) throw new ChorusError('unknown_track', `no local track ${which}`);
    return track;
  }

  _requireConnected() {
    if (!this._publisher.pc || (this.state !== 'connected' && this.state !== 'reconnecting')) {
      throw new ChorusError('invalid_state', `not connected (${this.state})`);
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
    return remoteStats(this);
  }

  /**
   * The server's view of what we receive: `{estimateBps, subscriptions: [{trackSid, currentLayer,
   * targetLayer, wantedLayer, reason, paused, layerSwitches}], quality: {rttMs, jitterMs, lossPercent,
   * bitrateInBps, bitrateOutBps, mos, uplink, downlink}}` (quality values are null until measured; see
   * docs/quality.md).
   */
  async getServerStats() {
    this._requireConnected();
    return this._quality.requestStats();
  }

  /** What the publisher connection sends: one entry per outbound RTP stream (per simulcast rid). */
  async getLocalStats() {
    return localStats(this._publisher.pc);
  }

  // ---------------------------------------------------------------------------------------------
  // Diagnostics

  _reportError(err) {
    this._log('error', err && err.code ? `${err.code}: ${err.message}` : err);
    this.emit('error', err);
  }

  _log(level, ...args) {
    logTo(this.logger, level, ...args);
  }
}
