/**
 * Chorus SDK — `Chat`, the room's text chat (`room.chat`): send, edit, delete, typing and the history the
 * server replays on join. It travels over the signaling WebSocket (`docs/protocol.md`, "Chat").
 *
 * Owns the chat state (`history`, `typing`) and matching each request to its answer by `nonce`; `room.js`
 * routes chat messages and chat errors here. Knows nothing of media.
 *
 * Events (`room.chat.on(name, fn)`):
 * - `history(messages)` — the history was replaced (after joining or resuming)
 * - `message(message)` — a new message (our own included); `edited(message)` — its new text
 * - `deleted({id, by})` — removed by its sender or a room admin
 * - `typing({participantSid, identity, typing})` — someone else started or stopped typing
 * A message is `{id, timestamp, identity, name, text, editedAt?}` (times in ms since the epoch).
 */

import { ChorusError } from './errors.js';
import { Emitter } from './emitter.js';

/** How long a request waits for the server's answer. */
const REPLY_TIMEOUT_MS = 10000;
/** While typing, `typing: true` is repeated this often (the server ends it after ~6 s without one). */
const TYPING_REFRESH_MS = 3000;

export class Chat extends Emitter {
  /**
   * @param {import('./signaling.js').Signaling} signaling
   * @param {() => string} state the room's state
   */
  constructor(signaling, state) {
    super();
    this._signaling = signaling;
    this._state = state;
    /** The room's recent messages, oldest first. */
    this.history = [];
    /** @type {Map<string, string>} participant sid → identity of those typing now */
    this.typing = new Map();
    this._pending = new Map();
    this._nextNonce = 1;
    this._typingSentAt = 0;
  }

  /** A new connection: forget the previous room's chat and fail what was waiting. */
  reset() {
    this.close(new ChorusError('disconnected', 'the room was disconnected'));
    this.history = [];
    this.typing = new Map();
    this._typingSentAt = 0;
  }

  /** Fails every request still waiting for an answer. */
  close(err) {
    for (const p of this._pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this._pending.clear();
  }

  /** Sends `text`; resolves with the message as the server stored it. Rejects with a ChorusError. */
  send(text) {
    this._typingSentAt = 0;
    return this._request({ type: 'chatSend', text: String(text) });
  }

  /** Replaces the text of one of your messages; resolves with the edited message. */
  edit(id, text) {
    return this._request({ type: 'chatEdit', id: String(id), text: String(text) });
  }

  /** Deletes one of your messages (any message with the `roomAdmin` grant); resolves once done. */
  async delete(id) {
    await this._request({ type: 'chatDelete', id: String(id) });
  }

  /** Says whether you are typing. Call it as often as you like: it only sends what the others need. */
  setTyping(typing) {
    const state = this._state();
    if (state !== 'connected' && state !== 'reconnecting') return;
    const now = Date.now();
    if (typing) {
      if (now - this._typingSentAt < TYPING_REFRESH_MS) return;
      this._typingSentAt = now;
    } else {
      if (!this._typingSentAt) return;
      this._typingSentAt = 0;
    }
    this._signaling.send({ type: 'chatTyping', typing: !!typing });
  }

  _request(msg) {
    const state = this._state();
    if (state !== 'connected' && state !== 'reconnecting') {
      return Promise.reject(new ChorusError('invalid_state', `not connected (${state})`));
    }
    const nonce = `c${this._nextNonce++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(nonce);
        reject(new ChorusError('timeout', `no answer to ${msg.type} within ${REPLY_TIMEOUT_MS} ms`));
      }, REPLY_TIMEOUT_MS);
      this._pending.set(nonce, { resolve, reject, timer });
      this._signaling.send({ ...msg, nonce });
    });
  }

  _answer(nonce, value) {
    const p = nonce && this._pending.get(nonce);
    if (!p) return;
    this._pending.delete(nonce);
    clearTimeout(p.timer);
    p.resolve(value);
  }

  /** A chat message from the server (`chatHistory`, `chatMessage`, `chatEdited`, `chatDeleted`, `chatTyping`). */
  onMessage(msg) {
    switch (msg.type) {
      case 'chatHistory':
        this.history = Array.isArray(msg.messages) ? msg.messages : [];
        this.emit('history', this.history);
        return;
      case 'chatMessage': {
        const m = msg.message;
        if (!m) return;
        this.history = this.history.filter((x) => x.id !== m.id).concat([m]);
        this._answer(msg.nonce, m);
        this.emit('message', m);
        return;
      }
      case 'chatEdited': {
        const m = msg.message;
        if (!m) return;
        this.history = this.history.map((x) => (x.id === m.id ? m : x));
        this._answer(msg.nonce, m);
        this.emit('edited', m);
        return;
      }
      case 'chatDeleted':
        this.history = this.history.filter((x) => x.id !== msg.id);
        this._answer(msg.nonce, undefined);
        this.emit('deleted', { id: msg.id, by: msg.by });
        return;
      case 'chatTyping':
        if (msg.typing) this.typing.set(msg.participantSid, msg.identity);
        else this.typing.delete(msg.participantSid);
        this.emit('typing', { participantSid: msg.participantSid, identity: msg.identity, typing: !!msg.typing });
        return;
      default:
    }
  }

  /** An `error` from the server: true when it answered one of our chat requests (which then rejects). */
  onError(msg) {
    const p = msg.nonce && this._pending.get(msg.nonce);
    if (!p) return false;
    this._pending.delete(msg.nonce);
    clearTimeout(p.timer);
    p.reject(new ChorusError(msg.code, msg.message, !!msg.fatal));
    return true;
  }
}
