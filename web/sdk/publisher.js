/**
 * Chorus SDK — the publisher RTCPeerConnection, where this client makes every offer: a transceiver per
 * local track (three simulcast encodings for video), the offer queue (one offer in flight at a time; later
 * requests are batched into the next offer), applying the server's `answer`, and `tracksAssigned` (giving
 * local tracks their sid).
 *
 * It reads and updates the Room's `localTracks` and `localParticipant.tracks` and emits
 * `localTrackPublished` on the Room. The public API is `room.js`'s publish/unpublish/mute methods, which check
 * the room's state and call the matching methods here.
 */

import { ChorusError } from './errors.js';
import { LocalTrack } from './participants.js';
import { closePeerConnection } from './peer.js';

/** Camera video: `q` (¼ size), `h` (½) and `f` (full), announced as `layers: ["q","h","f"]`. */
export const SIMULCAST_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 1700000 },
];

/** Video codecs a Room may prefer (`videoCodec`), by their MIME subtype. */
export const VIDEO_CODECS = { vp8: 'video/VP8', h264: 'video/H264', vp9: 'video/VP9', av1: 'video/AV1' };

/**
 * Offers only `codec` on `transceiver` (H.264: packetization-mode 1 first), plus the helpers that carry no
 * media of their own (RTX, RED, FEC). Only offering it makes the server answer with it: the server answers in
 * its own order of preference. Keeps the browser's codecs when it cannot send `codec`.
 */
function preferCodec(transceiver, codec, log) {
  const caps = typeof RTCRtpSender.getCapabilities === 'function' && RTCRtpSender.getCapabilities('video');
  if (!caps || typeof transceiver.setCodecPreferences !== 'function') return;
  const mime = VIDEO_CODECS[codec].toLowerCase();
  const mode1 = (c) => /packetization-mode=1/.test(c.sdpFmtpLine || '');
  const wanted = caps.codecs.filter((c) => c.mimeType.toLowerCase() === mime).sort((a, b) => mode1(b) - mode1(a));
  if (!wanted.length) {
    log('warn', `this browser cannot send ${codec}; using its default video codec`);
    return;
  }
  try {
    const helpers = caps.codecs.filter((c) => /^video\/(rtx|red|ulpfec|flexfec)/i.test(c.mimeType));
    transceiver.setCodecPreferences([...wanted, ...helpers]);
  } catch (err) {
    log('warn', `could not prefer ${codec}: ${err.message}`);
  }
}

export class Publisher {
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
    this._waiters = []; // renegotiation requests not yet in an offer
    this._inFlight = null; // {waiters, message} for the offer awaiting its answer
  }

  /** Uses `pc` (from `createPeerConnection`) from now on. */
  start(pc) {
    this.pc = pc;
  }

  /** Whether an offer is waiting for its answer. */
  get offerInFlight() {
    return !!this._inFlight;
  }

  /** Closes the connection and rejects every pending renegotiation with `err`. */
  close(err) {
    closePeerConnection(this.pc);
    this.pc = null;
    for (const w of this._waiters) w.reject(err);
    if (this._inFlight) for (const w of this._inFlight.waiters) w.reject(err);
    this._waiters = [];
    this._inFlight = null;
  }

  // ---------------------------------------------------------------------------------------------
  // Tracks

  /** getUserMedia for the camera (video: simulcast) and/or microphone, then publishes all of it in one offer. */
  async publishFromDevices({ video = true, audio = true } = {}) {
    const constraints = {
      video: video === true ? { width: { ideal: 1280 }, height: { ideal: 720 } } : video || false,
      audio: audio || false,
    };
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    const tracks = [];
    for (const mst of stream.getVideoTracks())
      tracks.push(this.addTrack(mst, { source: 'camera', name: 'camera', simulcast: true }));
    for (const mst of stream.getAudioTracks())
      tracks.push(this.addTrack(mst, { source: 'microphone', name: 'microphone', simulcast: false }));
    await this.renegotiate();
    return tracks;
  }

  /** Publishes a MediaStreamTrack the application already has; simulcast defaults to true for video. */
  async publishTrack(mst, { source, name, simulcast } = {}) {
    const isVideo = mst.kind === 'video';
    const track = this.addTrack(mst, {
      source: source || (isVideo ? 'camera' : 'microphone'),
      name: name || mst.label || mst.kind,
      simulcast: simulcast === undefined ? isVideo : simulcast && isVideo,
    });
    await this.renegotiate();
    return track;
  }

  /** Stops publishing `track`: tells the server, stops the capture, and renegotiates without it. */
  async unpublish(track) {
    const room = this._room;
    room.localTracks = room.localTracks.filter((t) => t !== track);
    if (track.sid) {
      room.localParticipant.tracks.delete(track.sid);
      this._signaling.send({ type: 'unpublish', trackSid: track.sid });
    }
    track.mediaStreamTrack.stop();
    await this.stopSending(track);
    await this.renegotiate();
  }

  /** `track.enabled = !muted` and a `mute` message (before the sid is known, the next offer carries it). */
  setMuted(track, muted) {
    track.muted = !!muted;
    track.mediaStreamTrack.enabled = !muted;
    if (track.sid) this._signaling.send({ type: 'mute', trackSid: track.sid, muted: !!muted });
    return track;
  }

  /** Adds a send-only transceiver for `mst` and a LocalTrack for it (in `room.localTracks`). */
  addTrack(mst, { source, name, simulcast }) {
    const layers = simulcast ? SIMULCAST_ENCODINGS.map((e) => e.rid) : [];
    const transceiver = this._addTransceiver(mst, layers);
    const track = new LocalTrack(mst, transceiver, { source, name, layers });
    this._room.localTracks.push(track);
    return track;
  }

  /**
   * A send-only transceiver for `mst`: the simulcast encodings named in `layers`, and for video the room's
   * `videoCodec` first in the codec preferences.
   */
  _addTransceiver(mst, layers) {
    const codec = mst.kind === 'video' ? this._room.videoCodec : null;
    const init = { direction: 'sendonly' };
    if (layers.length) {
      init.sendEncodings = SIMULCAST_ENCODINGS.filter((e) => layers.includes(e.rid)).map((e) => {
        const enc = { ...e };
        // VP9 and AV1 send several encodings as simulcast (not SVC) only with a scalability mode each.
        if (codec === 'vp9' || codec === 'av1') enc.scalabilityMode = 'L1T1';
        return enc;
      });
    }
    const transceiver = this.pc.addTransceiver(mst, init);
    if (codec) preferCodec(transceiver, codec, (...args) => this._room._log(...args));
    return transceiver;
  }

  /**
   * After a rejoin (a new session, new connection `pc`): sends every local track again on a new transceiver,
   * same LocalTrack objects, mute state kept; the server assigns new sids (`localTrackPublished` again).
   * Resolves once the server has answered.
   */
  republish() {
    for (const track of this._room.localTracks) {
      track.transceiver = this._addTransceiver(track.mediaStreamTrack, track.layers);
      track.sid = null;
      track.enabled = true;
      track.activeLayers = track.layers.slice();
    }
    return this.renegotiate();
  }

  /** Stops sending `track`'s transceiver (the next offer then leaves it out). */
  async stopSending(track) {
    try {
      await track.transceiver.sender.replaceTrack(null);
      track.transceiver.direction = 'inactive';
    } catch (err) {
      this._room._log('warn', `could not deactivate transceiver: ${err.message}`);
    }
  }

  /** `tracksAssigned`: gives local tracks their sid and emits `localTrackPublished`. */
  onTracksAssigned(msg) {
    const room = this._room;
    for (const { mid, trackSid } of msg.tracks || []) {
      const track = room.localTracks.find((t) => t.mid === mid);
      if (!track) {
        room._log('warn', `tracksAssigned for unknown mid ${mid}`);
        continue;
      }
      if (track.sid === trackSid) continue;
      if (track.sid) room.localParticipant.tracks.delete(track.sid);
      track.sid = trackSid;
      room.localParticipant.tracks.set(trackSid, track);
      // setMuted() while the offer was in flight: the server only knows the offered state.
      if (track._offeredMuted !== undefined && track._offeredMuted !== track.muted) {
        this._signaling.send({ type: 'mute', trackSid, muted: track.muted });
      }
      room.emit('localTrackPublished', track);
    }
  }

  /**
   * Dynacast (`publishLayers`): encode only the layers someone receives — `active = false` on the other
   * encodings, or on all of them when nobody receives the track.
   */
  async onPublishLayers(msg) {
    const room = this._room;
    const track = room.localTracks.find((t) => t.sid === msg.trackSid);
    if (!track || !track.transceiver) return;
    const sender = track.transceiver.sender;
    const params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) return;
    const layers = msg.layers || [];
    for (const enc of params.encodings) {
      enc.active = !!msg.enabled && (!enc.rid || layers.length === 0 || layers.includes(enc.rid));
    }
    try {
      await sender.setParameters(params);
    } catch (err) {
      room._log('warn', `could not apply publishLayers: ${err.message}`);
      return;
    }
    track.enabled = !!msg.enabled;
    track.activeLayers = params.encodings.filter((e) => e.active && e.rid).map((e) => e.rid);
    room.emit('publishLayersChanged', { track, enabled: track.enabled, layers: track.activeLayers });
  }

  // ---------------------------------------------------------------------------------------------
  // The offer queue

  /** Asks for a publisher offer; resolves when an offer made after this call has been answered. */
  renegotiate() {
    return new Promise((resolve, reject) => {
      this._waiters.push({ resolve, reject });
      if (!this._inFlight) this._sendOffer();
    });
  }

  async _sendOffer() {
    const waiters = this._waiters;
    this._waiters = [];
    const inFlight = { waiters, message: null };
    this._inFlight = inFlight;
    try {
      const pc = this.pc;
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (this._inFlight !== inFlight) return; // torn down meanwhile
      const tracks = [];
      for (const t of this._room.localTracks) {
        const tr = t.transceiver;
        if (!tr || tr.mid == null || tr.currentDirection === 'stopped' || !tr.sender.track) continue;
        const entry = { mid: tr.mid, kind: t.kind, source: t.source, name: t.name, muted: t.muted };
        t._offeredMuted = t.muted;
        if (t.layers.length) entry.layers = t.layers;
        const settings = t.kind === 'video' && t.mediaStreamTrack.getSettings ? t.mediaStreamTrack.getSettings() : {};
        if (settings.width && settings.height) Object.assign(entry, { width: settings.width, height: settings.height });
        tracks.push(entry);
      }
      inFlight.message = { type: 'offer', sdp: pc.localDescription.sdp, tracks };
      this._signaling.send(inFlight.message);
      this._signaling.releaseCandidates('publisher');
    } catch (err) {
      this.failOffer(
        err instanceof ChorusError
          ? err
          : new ChorusError('negotiation_failed', `creating the offer failed: ${err.message}`),
      );
    }
  }

  /** The server's `answer` to the offer in flight. */
  async onAnswer(msg) {
    const inFlight = this._inFlight;
    if (!inFlight || !this.pc || this.pc.signalingState !== 'have-local-offer') {
      this._room._log('warn', 'ignoring an answer with no offer pending');
      return;
    }
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
    } catch (err) {
      this.failOffer(new ChorusError('negotiation_failed', `applying the answer failed: ${err.message}`));
      return;
    }
    if (this._inFlight !== inFlight) return;
    this._inFlight = null;
    for (const w of inFlight.waiters) w.resolve();
    if (this._waiters.length) this._sendOffer();
  }

  /**
   * After a resume: the answer to the offer in flight may have been lost with the old socket, so roll it
   * back and offer afresh (valid whether or not the server applied the old one).
   */
  async restartOffer() {
    const inFlight = this._inFlight;
    this._inFlight = null;
    if (inFlight) this._waiters = inFlight.waiters.concat(this._waiters);
    if (this.pc && this.pc.signalingState === 'have-local-offer') {
      try {
        await this.pc.setLocalDescription({ type: 'rollback' });
      } catch (_) {
        /* nothing to roll back */
      }
    }
    if (this._waiters.length && this.pc && !this._inFlight) this._sendOffer();
  }

  /** The offer in flight failed: roll it back, reject its waiters with `err`, offer for the rest. */
  async failOffer(err) {
    const inFlight = this._inFlight;
    this._inFlight = null;
    if (this.pc && this.pc.signalingState === 'have-local-offer') {
      try {
        await this.pc.setLocalDescription({ type: 'rollback' });
      } catch (_) {
        /* nothing to roll back */
      }
    }
    if (inFlight) for (const w of inFlight.waiters) w.reject(err);
    if (this._waiters.length && this.pc) this._sendOffer();
  }
}
