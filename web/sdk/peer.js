/**
 * Chorus SDK — what the publisher and subscriber RTCPeerConnections have in common: their configuration
 * (bundled, RTCP-muxed), trickling local ICE candidates through signaling, logging connection state, and
 * closing them.
 *
 * Negotiation is not here: `publisher.js` makes offers, `subscriber.js` answers them.
 */

/**
 * Creates the connection for `target` (`publisher` or `subscriber`).
 * @param {string} target
 * @param {RTCIceServer[]} iceServers
 * @param {{signaling: import('./signaling.js').Signaling, log: Function, onFailed: Function,
 *   onConnected?: Function, iceTransportPolicy?: 'all'|'relay'}} hooks
 *   `onFailed()` runs when the connection state becomes `failed`, `onConnected()` when it becomes `connected`;
 *   `iceTransportPolicy: 'relay'` uses TURN only
 */
export function createPeerConnection(target, iceServers, { signaling, log, onFailed, onConnected, iceTransportPolicy }) {
  const pc = new RTCPeerConnection({
    iceServers,
    iceTransportPolicy: iceTransportPolicy || 'all',
    bundlePolicy: 'max-bundle',
    rtcpMuxPolicy: 'require',
  });
  pc.onicecandidate = (ev) => {
    // `null` (and Chrome's empty-string candidate) both mean end of candidates: send "".
    const candidate = ev.candidate && ev.candidate.candidate ? ev.candidate.candidate : '';
    signaling.sendCandidate(target, candidate);
  };
  pc.onconnectionstatechange = () => {
    log('log', `${target} connection ${pc.connectionState}`);
    if (pc.connectionState === 'failed') onFailed();
    if (pc.connectionState === 'connected' && onConnected) onConnected();
  };
  return pc;
}

/** Detaches the handlers and closes `pc` (if any). */
export function closePeerConnection(pc) {
  if (pc) {
    pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = null;
    pc.close();
  }
}
