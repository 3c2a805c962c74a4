/**
 * Chorus SDK — rejoining: when a lost session cannot be resumed (its node failed and the room was placed on
 * another node, or the resume window passed), or the server ended it because its media connection failed
 * (`recoverMedia`), the Room joins again as a new session through the URL the
 * application gave, and carries on as if it had resumed: same Room, same LocalParticipant and LocalTrack
 * objects (with new sids), every local track published again, remote participants brought up to date.
 *
 * Apps see `reconnecting`, then `reconnected({rejoined: true})`; remote participants that rejoined too show
 * up as `participantLeft` (old sid) and `participantJoined` (new sid). If no join succeeds within the window,
 * the Room ends with `disconnected({reason: 'rejoin_failed'})`.
 */

import { ChorusError } from './errors.js';

/**
 * Joins `room` (state `reconnecting`) again for up to `windowMs`; `why` says in the log why the old session is
 * not carried on.
 * @param {import('./room.js').Room} room
 * @param {number} windowMs
 * @param {string} [why]
 */
export async function rejoin(room, windowMs, why = 'the session cannot be resumed') {
  room._log('warn', `${why}: joining again as a new session`);
  let joined;
  try {
    joined = await room._signaling.rejoin(() => room.state === 'reconnecting', windowMs);
  } catch (err) {
    room._log('warn', `rejoin refused: ${err.code} ${err.message}`);
    room._finish(err.code);
    return;
  }
  if (!joined) {
    if (room.state === 'reconnecting') room._finish('rejoin_failed');
    return;
  }
  room._applySessionInfo(joined);
  const local = room.localParticipant;
  local.sid = joined.participant.sid;
  local.name = joined.participant.name || local.name;
  local.tracks.clear();
  // Old participants leave (with the old subscriber bindings, so their tracks get `trackUnsubscribed`),
  // current ones join.
  room._roster.reconcile(joined.participants || []);
  const replaced = new ChorusError('disconnected', 'the session was replaced by a new one (rejoin)');
  room._publisher.close(replaced);
  room._subscriber.close();
  room._subscriber.reset();
  room._data.reset();
  room._quality.reset();
  room.chat.close(replaced);
  room._startSession(joined);
  // The data channels and every local track go in the first offer of the new session.
  room._publisher.republish().catch((err) => room._reportError(err));
  room._signaling.flushOutbox();
  room.emit('reconnected', { rejoined: true });
}
