/**
 * Chorus SDK — the signaling WebSocket (`docs/protocol.md`): opening it and sending `join`, parsing what
 * arrives, sending (with an outbox for messages and per-connection queues for ICE candidates while they
 * cannot go out yet), the `ping` keepalive, the resume loop (`join {resume}` until `resumed` or the
 * resume window runs out) and the rejoin loop (a fresh `join` when the session cannot be resumed).
 *
 * It owns the socket and the session values the server hands out (`resumeToken`, `resumeWindowSecs`,
 * `pingIntervalSecs`). It does not interpret messages or change the room's state: the Room passes hooks
 * and decides what a lost socket, a resumed session or a message means.
 */

import { ChorusError } from './errors.js';
import { describe } from './log.js';

/** Redirects (cluster: the room lives on another node) followed in a row before giving up. */
const MAX_REDIRECTS = 3;
/** Backoff between resume or rejoin attempts. */
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 2000;
/** Longest wait for one attempt's `joined`/`resumed`. */
const ATTEMPT_TIMEOUT_MS = 5000;

/**
 * @typedef {object} SignalingHooks
 * @property {() => string} state the room's state (`connected` lets messages out)
 * @property {() => boolean} debug whether to log every message
 * @property {(level: string, ...args: any[]) => void} log
 * @property {(err: Error) => void} reportError
 * @property {(msg: object) => void} onMessage a parsed message from the adopted socket
 * @property {(why: string) => void} onLost the adopted socket closed or went silent (already closed here)
 */

export class Signaling {
  /** @param {SignalingHooks} hooks */
  constructor(hooks) {
    this._hooks = hooks;
    this.reset();
  }

  /** Forgets the previous session (the socket must already be closed). */
  reset() {
    /** @type {WebSocket|null} the adopted socket, once `joined`/`resumed` arrived on it */
    this.ws = null;
    this._wsUrl = null; // where the next attempt goes: the room's node once joined
    this._entryUrl = null; // the URL the application gave (any node, or a load balancer)
    this._token = null;
    this._autoSubscribe = true;
    this.resumeToken = null;
    this.resumeWindowSecs = 10;
    this.pingIntervalSecs = 10;
    this._pingTimer = null;
    this._lastReceived = 0;
    this._outbox = []; // messages held while the WebSocket is being resumed
    this._trickleReady = { publisher: false, subscriber: false };
    this._trickleQueue = { publisher: [], subscriber: [] };
  }

  // ---------------------------------------------------------------------------------------------
  // Joining and resuming

  /** Opens `wsUrl`, sends `join` and resolves with the `joined` message. */
  join(wsUrl, token, autoSubscribe, timeoutMs) {
    this._wsUrl = wsUrl;
    this._entryUrl = wsUrl;
    this._token = token;
    this._autoSubscribe = autoSubscribe;
    const join = { type: 'join', token };
    if (!autoSubscribe) join.autoSubscribe = false;
    return this._openAndJoin(join, 'joined', timeoutMs);
  }

  /** Takes the session values from `joined` / `resumed`. */
  applySessionInfo(msg) {
    this.resumeToken = msg.resumeToken;
    if (msg.resumeWindowSecs > 0) this.resumeWindowSecs = msg.resumeWindowSecs;
    if (msg.pingIntervalSecs > 0) this.pingIntervalSecs = msg.pingIntervalSecs;
  }

  /**
   * Tries to resume the session of `participantSid` until `resumeWindowSecs` runs out, backing off from
   * 250 ms to 2 s. The first attempt goes to the room's node; later ones to the URL the application gave,
   * which redirects to the room's node wherever it is now (cluster: the node may have failed). Resolves with
   * the `resumed` message, or with null when the window ran out or `stillReconnecting()` turned false (then a
   * socket that resumed after all is told `leave`). Rejects with the server's fatal error when it refuses the
   * resume (`resume_failed`: the session is gone, join again), except `unavailable`, which is retried.
   */
  resume(participantSid, stillReconnecting) {
    const makeJoin = () => {
      const join = {
        type: 'join',
        token: this._token,
        resume: { participantSid, resumeToken: this.resumeToken },
      };
      if (!this._autoSubscribe) join.autoSubscribe = false;
      return join;
    };
    return this._retry('resumed', makeJoin, stillReconnecting, this.resumeWindowSecs * 1000);
  }

  /**
   * Joins again as a new session, through the URL the application gave, retrying like `resume` for up to
   * `windowMs`: for when the old session cannot be resumed (its node failed, or the resume window passed).
   * Drops what was held for the old session except chat requests. Resolves with `joined` or null; rejects
   * with the server's fatal error (other than `unavailable`).
   */
  rejoin(stillReconnecting, windowMs) {
    this.ws = null;
    this.resumeToken = null;
    this._wsUrl = this._entryUrl;
    this._outbox = this._outbox.filter((m) => m.type.startsWith('chat'));
    this._trickleReady = { publisher: false, subscriber: false };
    this._trickleQueue = { publisher: [], subscriber: [] };
    const makeJoin = () => {
      const join = { type: 'join', token: this._token };
      if (!this._autoSubscribe) join.autoSubscribe = false;
      return join;
    };
    return this._retry('joined', makeJoin, stillReconnecting, windowMs);
  }

  /**
   * The loop behind `resume` and `rejoin`. Fatal errors end it, except `unavailable` ("no node can take the
   * room yet", e.g. while a failed node's rooms are being placed again), which is retried.
   */
  async _retry(expectType, makeJoin, stillReconnecting, windowMs) {
    const deadline = Date.now() + windowMs;
    let delay = FIRST_RETRY_MS;
    while (stillReconnecting()) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        const reply = await this._openAndJoin(makeJoin(), expectType, Math.min(remaining, ATTEMPT_TIMEOUT_MS));
        if (!stillReconnecting()) {
          // leave() was called meanwhile: say so, so the server does not wait out the resume window.
          const ws = this.ws;
          this.ws = null;
          try {
            this._rawSend(ws, { type: 'leave' });
            ws.close();
          } catch (_) {
            /* ignore */
          }
          return null;
        }
        return reply;
      } catch (err) {
        if (err.fatal && err.code !== 'unavailable') throw err;
        this._hooks.log('warn', `${expectType === 'resumed' ? 'resume' : 'rejoin'} attempt failed: ${err.message}`);
      }
      if (this._wsUrl !== this._entryUrl) {
        // The room's node did not answer: ask the entry URL where the room lives now.
        this._hooks.log('info', `trying ${this._entryUrl} next`);
        this._wsUrl = this._entryUrl;
      }
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
    return null;
  }

  /**
   * Opens a WebSocket, sends `join` and waits for `expectType` (`joined`/`resumed`), following the
   * server's `redirect`s (cluster: the room lives on another node). Messages after it go to the normal
   * handler. Rejects on a server `error`, a close, or the timeout.
   */
  _openAndJoin(join, expectType, timeoutMs, redirects = 0) {
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
      /** Stops waiting and drops this socket; false if already settled. */
      const abandon = () => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch (_) {
          /* already closed */
        }
        return true;
      };
      const fail = (err) => {
        if (abandon()) reject(err);
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
          else this._hooks.reportError(new ChorusError(msg.code, msg.message));
          return;
        }
        if (msg.type === 'redirect') {
          // Cluster: the room lives on another node. Later resumes go there too.
          abandon();
          if (redirects >= MAX_REDIRECTS) {
            reject(new ChorusError('connection_failed', `more than ${MAX_REDIRECTS} redirects in a row`));
            return;
          }
          this._hooks.log('info', `room lives on node ${msg.node}: following the redirect`);
          this._wsUrl = msg.url;
          this._openAndJoin(join, expectType, timeoutMs, redirects + 1).then(resolve, reject);
          return;
        }
        if (msg.type !== expectType) {
          this._hooks.log('warn', `ignoring ${msg.type} before ${expectType}`);
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
    this.ws = ws;
    this._lastReceived = Date.now();
    ws.onmessage = (ev) => {
      this._lastReceived = Date.now();
      const msg = this._parse(ev.data);
      if (msg) this._hooks.onMessage(msg);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this._lost(`WebSocket closed (code ${ev.code}${ev.reason ? `, ${ev.reason}` : ''})`);
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Keepalive and losing the socket

  /** (Re)starts `ping` every `pingIntervalSecs`; three silent intervals count as a lost socket. */
  startKeepalive() {
    clearInterval(this._pingTimer);
    const intervalMs = this.pingIntervalSecs * 1000;
    this._pingTimer = setInterval(() => {
      if (this._hooks.state() !== 'connected' || !this.ws) return;
      if (Date.now() - this._lastReceived > 3 * intervalMs) {
        // The server answers every ping; three silent intervals mean the connection is gone.
        this._lost('no message from the server for three ping intervals');
        return;
      }
      this.send({ type: 'ping', timestamp: Date.now() });
    }, intervalMs);
  }

  _lost(why) {
    this._dropSocket();
    this._hooks.onLost(why);
  }

  /** Stops the keepalive and closes the socket without telling anyone. */
  close() {
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    this._dropSocket();
  }

  _dropSocket() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch (_) {
        /* already closed */
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Sending

  /** Whether the adopted socket is open. */
  isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends on the adopted socket now, whatever the room's state (for `leave`). */
  sendNow(msg) {
    this._rawSend(this.ws, msg);
  }

  /**
   * Sends `msg` while connected; while reconnecting (or connected without an open socket) holds it for
   * `flushOutbox` — except pings, which are dropped, and candidates, which go back to their queue.
   */
  send(msg) {
    const ws = this.ws;
    const state = this._hooks.state();
    if (ws && ws.readyState === WebSocket.OPEN && state === 'connected') {
      this._rawSend(ws, msg);
    } else if (state === 'reconnecting' || state === 'connected') {
      if (msg.type !== 'ping' && msg.type !== 'candidate') this._outbox.push(msg);
      else if (msg.type === 'candidate') this._trickleQueue[msg.target].push(msg);
    }
  }

  /** Sends what `send` held while the socket was down. */
  flushOutbox() {
    const outbox = this._outbox;
    this._outbox = [];
    for (const m of outbox) this.send(m);
  }

  _rawSend(ws, msg) {
    if (this._hooks.debug()) this._hooks.log('log', '→', describe(msg));
    ws.send(JSON.stringify(msg));
  }

  // ---------------------------------------------------------------------------------------------
  // Trickle ICE: a connection's local candidates go out only after the offer/answer they belong to.

  /** Sends (or queues) a local candidate of `target`; `""` marks the end of candidates. */
  sendCandidate(target, candidate) {
    const msg = { type: 'candidate', target, candidate };
    if (this._trickleReady[target]) this.send(msg);
    else this._trickleQueue[target].push(msg);
  }

  /** Queues `target`'s candidates until `releaseCandidates(target)`. */
  holdCandidates(target) {
    this._trickleReady[target] = false;
  }

  /** Sends `target`'s queued candidates, and later ones as they come. */
  releaseCandidates(target) {
    this._trickleReady[target] = true;
    const queued = this._trickleQueue[target];
    this._trickleQueue[target] = [];
    for (const msg of queued) this.send(msg);
  }

  // ---------------------------------------------------------------------------------------------
  // Receiving

  _parse(data) {
    if (typeof data !== 'string') {
      this._hooks.log('warn', 'ignoring a binary frame');
      return null;
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (err) {
      this._hooks.reportError(new ChorusError('bad_message', `unparsable message from server: ${err.message}`));
      return null;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') {
      this._hooks.reportError(new ChorusError('bad_message', 'message without a type'));
      return null;
    }
    if (this._hooks.debug()) this._hooks.log('log', '←', describe(msg));
    return msg;
  }
}
