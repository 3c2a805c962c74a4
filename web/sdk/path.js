/**
 * Chorus SDK — which network path a peer connection uses, from its selected ICE candidate pair:
 * `udp` (direct UDP), `tcp` (ICE over TCP to the server's passive TCP candidate) or `relay` (through a TURN
 * server; `relayProtocol` says how this client reaches it: udp, tcp or tls).
 *
 * Only reads `getStats()`; never changes the connection. `reportPath` records the result on the Room.
 */

/**
 * @param {RTCPeerConnection} pc
 * @returns {Promise<{path: 'udp'|'tcp'|'relay', relayProtocol?: string, local: string, remote: string}|null>}
 *   `null` while no pair is selected
 */
export async function selectedPath(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) {
    // Firefox has no transport stats: the nominated, succeeded pair.
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    });
  }
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  if (!local || !remote) return null;
  const describe = (c) => `${c.candidateType} ${c.protocol} ${c.address || c.ip}:${c.port}`;
  const out = { local: describe(local), remote: describe(remote) };
  if (local.candidateType === 'relay') return { path: 'relay', relayProtocol: local.relayProtocol, ...out };
  return { path: remote.protocol === 'tcp' || local.protocol === 'tcp' ? 'tcp' : 'udp', ...out };
}

/**
 * Reads which path `target`'s connection of `room` took, stores it in `room.connectionPath` and emits
 * `connectionPath`.
 */
export async function reportPath(room, target, pc) {
  try {
    const path = await selectedPath(pc);
    if (!path) return;
    room.connectionPath = { ...room.connectionPath, [target]: path };
    room._log('log', `${target} connected over ${path.path} (${path.local} -> ${path.remote})`);
    room.emit('connectionPath', room.connectionPath);
  } catch (err) {
    room._log('warn', `cannot read the ${target} path: ${err.message}`);
  }
}
