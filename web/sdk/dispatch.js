/**
 * Chorus SDK — routing each server message to the part of the `Room` that handles it (`room.js` owns the
 * lifecycle; `publisher.js`, `subscriber.js`, `roster.js`, `quality.js`, `data.js` and `chat.js` the rest).
 * A handler may return a promise; `Room` reports its failure as an `error` event.
 */

import { ChorusError } from './errors.js';

/**
 * Hands `msg` (a parsed server message) to its handler.
 * @param {import('./room.js').Room} room
 * @param {{type: string}} msg
 */
export function dispatch(room, msg) {
  switch (msg.type) {
    case 'pong':
      return;
    case 'answer':
      return room._publisher.onAnswer(msg);
    case 'tracksAssigned':
      return room._publisher.onTracksAssigned(msg);
    case 'offer':
      room._subscriber.enqueueOffer(msg);
      return;
    case 'candidate':
      return onRemoteCandidate(room, msg);
    case 'participantJoined':
      return room._roster.onParticipantJoined(msg);
    case 'participantLeft':
      return room._roster.onParticipantLeft(msg);
    case 'trackPublished':
      return room._roster.onTrackPublished(msg);
    case 'trackUnpublished':
      return room._roster.onTrackUnpublished(msg);
    case 'trackMuted':
      return room._roster.onTrackMuted(msg);
    case 'streamState':
      return room._quality.onStreamState(msg);
    case 'activeSpeakers':
      return room._roster.onActiveSpeakers(msg);
    case 'publishLayers':
      return room._publisher.onPublishLayers(msg);
    case 'stats':
      return room._quality.onStats(msg);
    case 'dataReady':
      return room._data.onReady(msg);
    case 'chatHistory':
    case 'chatMessage':
    case 'chatEdited':
    case 'chatDeleted':
    case 'chatTyping':
      return room.chat.onMessage(msg);
    case 'left':
      if (room._onEndedByServer(msg.reason)) return;
      room._log('log', `server ended the session: ${msg.reason}`);
      room._leaving = true;
      if (room._leftWaiter) room._leftWaiter();
      room._finish(msg.reason || 'left');
      return;
    case 'error':
      return onServerError(room, msg);
    case 'joined':
    case 'resumed':
      room._log('warn', `unexpected ${msg.type}`);
      return;
    default:
      room._log('log', `ignoring unknown message type ${msg.type}`);
  }
}

function onServerError(room, msg) {
  if (!msg.fatal && room.chat.onError(msg)) return; // it rejected that chat request's promise
  const err = new ChorusError(msg.code, msg.message, !!msg.fatal);
  // Errors carry no request id; a negotiation error while our offer is pending is about that offer.
  if (room._publisher.offerInFlight && (msg.code === 'negotiation_failed' || msg.code === 'permission_denied')) {
    room._publisher.failOffer(err);
  }
  room._reportError(err);
  if (msg.fatal) room._finish(msg.code);
}

function onRemoteCandidate(room, msg) {
  const pc = msg.target === 'publisher' ? room._publisher.pc : room._subscriber.pc;
  if (!pc || !msg.candidate) return;
  pc.addIceCandidate({ candidate: msg.candidate, sdpMLineIndex: 0 }).catch((err) =>
    room._log('warn', `addIceCandidate(${msg.target}) failed: ${err.message}`),
  );
}
