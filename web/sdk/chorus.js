/**
 * Chorus browser SDK — the public entry point: plain ES modules, no build step, no dependencies.
 *
 * This file only re-exports the public API and documents it; the SDK itself is the modules in `web/sdk/`
 * (see `web/README.md` for what each one owns). The Chorus server serves this directory at `/sdk/`, so
 * this file is `/sdk/chorus.js` and `./room.js` is `/sdk/room.js`, on disk and when served alike. It speaks the signaling protocol in
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
 * - `new Room({debug?, logger?, defaultQuality?, adaptiveStream?, iceTransportPolicy?, rejoinWindowMs?,
 *   recoverMedia?, videoCodec?})` — see `room.js`; `videoCodec` (`vp8` | `h264` | `vp9` | `av1`) is the codec published video
 *   is sent in
 * - `room.connect(wsUrl, token, {autoSubscribe = true, timeoutMs = 15000})` → Promise; resolves on
 *   `joined`, rejects with a `ChorusError` carrying `.code` (`unauthorized`, `token_expired`,
 *   `room_full`, `connection_failed`, …).
 * - `room.publishCamera()`, `room.publishMicrophone()`, `room.publishTracks({video, audio})` →
 *   Promise<LocalTrack[]> once the server has answered (the tracks then have their `sid`).
 *   `room.publishTrack(mediaStreamTrack, {source, name, simulcast})` for a track you already have.
 * - `room.unpublish(trackSid | 'camera' | 'microphone')`, `room.setMuted(trackSid | 'camera' |
 *   'microphone', muted)`, `room.setSubscribed(trackSids, subscribe)`.
 * - `room.sendData(payload, {reliable = true, to: [identities], topic})` — a string, ArrayBuffer or typed
 *   array to everyone else in the room (or only `to`) on the `reliable` (ordered) or lossy channel;
 *   `room.isDataOpen(reliable)`. The server stamps your identity; see the `data` event.
 * - `room.leave()` → Promise; sends `leave`, waits briefly for `left`, closes everything.
 * - `room.getRemoteStats()` → Promise<{[participantSid]: {sid, identity, videoFramesDecoded, …}}>
 *   from the subscriber connection's `getStats()`; `room.getLocalStats()` likewise for what we send.
 * - Chat (`room.chat`, see `chat.js`): `send(text)` → Promise<message>, `edit(id, text)` → Promise<message>,
 *   `delete(id)` → Promise, `setTyping(bool)`, `history` (array, oldest first), `typing` (Map sid → identity);
 *   events `history`, `message`, `edited`, `deleted`, `typing` on `room.chat`. Refusals reject with a ChorusError
 *   (`permission_denied`, `chat_empty`, `chat_too_long`, `chat_unknown_message`, `chat_not_author`,
 *   `chat_rate_limited`).
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
 * - `data({payload, from, topic, reliable})` — a data message; `payload` is a string when sent as one, else
 *   a Uint8Array; `from` is the sender's identity (`null` when the server sent it)
 * - `activeSpeakersChanged(participants)` — who is talking now, loudest first (remote participants and the
 *   local one; empty: nobody); also `room.activeSpeakers`, and `isSpeaking` / `audioLevel` (1-127) on each
 *   participant. The server gives active speakers' video bandwidth first
 * - `dataOpen()` — both data channels are open and confirmed by the server (`room.isDataOpen` turns true);
 *   from then on everything others send reaches this room
 * - `reconnecting()`, `reconnected({rejoined})` — the WebSocket dropped; then the session was resumed
 *   (`rejoined: false`), or, when it could not be (its node failed, or the resume window passed), the room
 *   joined again as a new session (`rejoined: true`: new sids for `localParticipant` and local tracks, every
 *   local track published again, remote participants that rejoined too come back under new sids). After
 *   `rejoinWindowMs` without success: `disconnected({reason: 'rejoin_failed'})`. The same `reconnecting`,
 *   `reconnected({rejoined: true})` follow a media failure (the server ended the session with `mediaFailed`
 *   after its media had connected, e.g. after a network change) unless `recoverMedia` is false
 * - `disconnected({reason})` — final; `error(error)` — non-fatal problems, for logging
 *
 * Objects
 * - RemoteParticipant `{sid, identity, name, tracks: Map<trackSid, RemoteTrack>, isSpeaking, audioLevel}`
 * - RemoteTrack `{sid, kind, source, name, muted, layers, participant, mid, subscribed,
 *   mediaStreamTrack, attach(element?) → element, detach(element?)}`; `mediaStreamTrack` is set while
 *   subscribed.
 * - LocalParticipant `{sid, identity, name, tracks: Map<trackSid, LocalTrack>, isSpeaking, audioLevel}`
 * - LocalTrack `{sid, kind, source, name, muted, layers, mid, mediaStreamTrack, attach(element?)}`
 */

export { Room } from './room.js';
export { ChorusError } from './errors.js';
export { RemoteTrack, LocalTrack, RemoteParticipant, LocalParticipant } from './participants.js';
