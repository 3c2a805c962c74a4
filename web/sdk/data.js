/**
 * Chorus SDK — application data: the `reliable` and `lossy` data channels on the publisher connection, the
 * binary envelope the server expects (docs/protocol.md, "Data"), `room.sendData` and the Room's `data` event.
 *
 * The server stamps the sender's identity; this file never sends one. A channel counts as open once it is open
 * here and the server has confirmed it (`dataReady`): from then on, everything others send reaches us. Messages
 * sent before that wait for it (at most MAX_QUEUED of them).
 */

import { ChorusError } from './errors.js';

const VERSION = 1;
const FLAG_TEXT = 1;
const FLAG_FROM_SERVER = 2;
/** Messages kept while a channel is still opening; more is an error rather than unbounded memory. */
const MAX_QUEUED = 1000;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The client → server envelope: flags, topic, recipients, payload. */
export function encodeEnvelope(payload, { topic = '', to = [] } = {}) {
  const text = typeof payload === 'string';
  const body = text ? encoder.encode(payload) : toBytes(payload);
  const topicBytes = encoder.encode(topic || '');
  const recipients = [].concat(to || []).map((id) => encoder.encode(String(id)));
  let size = 2 + 2 + topicBytes.length + 2 + body.length;
  for (const r of recipients) size += 2 + r.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  out[at++] = VERSION;
  out[at++] = text ? FLAG_TEXT : 0;
  const putBytes = (bytes) => {
    view.setUint16(at, bytes.length);
    out.set(bytes, at + 2);
    at += 2 + bytes.length;
  };
  putBytes(topicBytes);
  view.setUint16(at, recipients.length);
  at += 2;
  for (const r of recipients) putBytes(r);
  out.set(body, at);
  return out;
}

/** The server → client envelope; `null` when malformed. */
export function decodeEnvelope(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 2;
  if (bytes.length < 2 || bytes[0] !== VERSION) return null;
  const flags = bytes[1];
  const takeString = () => {
    if (at + 2 > bytes.length) throw new Error('truncated');
    const len = view.getUint16(at);
    if (at + 2 + len > bytes.length) throw new Error('truncated');
    const s = decoder.decode(bytes.subarray(at + 2, at + 2 + len));
    at += 2 + len;
    return s;
  };
  try {
    const topic = takeString();
    const sender = takeString();
    const body = bytes.slice(at);
    return {
      payload: flags & FLAG_TEXT ? decoder.decode(body) : body,
      from: flags & FLAG_FROM_SERVER ? null : sender,
      topic,
    };
  } catch (_) {
    return null;
  }
}

function toBytes(payload) {
  if (payload instanceof Uint8Array) return payload;
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload);
  if (ArrayBuffer.isView(payload)) return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  throw new ChorusError('bad_request', 'sendData payload must be a string, ArrayBuffer or typed array');
}

export class DataChannels {
  /** @param {import('./room.js').Room} room */
  constructor(room) {
    this._room = room;
    this.reset();
  }

  reset() {
    this._channels = { reliable: null, lossy: null };
    this._serverReady = { reliable: false, lossy: false };
    this._queued = [];
  }

  /** The server's `dataReady`: it now delivers to (and accepts from) that channel. */
  onReady(msg) {
    if (!(msg.channel in this._serverReady)) return;
    this._serverReady[msg.channel] = true;
    this._flush();
    if (this.isOpen(true) && this.isOpen(false)) this._room.emit('dataOpen', {});
  }

  /** Creates both channels on the publisher connection (before its first offer). */
  start(pc) {
    this._channels.reliable = this._open(pc, 'reliable', { ordered: true });
    this._channels.lossy = this._open(pc, 'lossy', { ordered: false, maxRetransmits: 0 });
  }

  _open(pc, label, init) {
    const channel = pc.createDataChannel(label, init);
    channel.binaryType = 'arraybuffer';
    channel.onopen = () => {
      this._flush();
      if (this.isOpen(true) && this.isOpen(false)) this._room.emit('dataOpen', {});
    };
    channel.onmessage = (ev) => {
      const msg = decodeEnvelope(ev.data);
      if (!msg) {
        this._room._log('warn', `ignoring a malformed message on the ${label} data channel`);
        return;
      }
      this._room.emit('data', { ...msg, reliable: label === 'reliable' });
    };
    return channel;
  }

  /** Whether the channel of that kind is open here and confirmed by the server. */
  isOpen(reliable = true) {
    const kind = reliable ? 'reliable' : 'lossy';
    const ch = this._channels[kind];
    return !!ch && ch.readyState === 'open' && this._serverReady[kind];
  }

  /** Sends now, or once the channel opens. */
  send(payload, { reliable = true, to, topic } = {}) {
    const frame = encodeEnvelope(payload, { topic, to });
    const kind = reliable ? 'reliable' : 'lossy';
    const channel = this._channels[kind];
    if (!channel || channel.readyState === 'closing' || channel.readyState === 'closed') {
      throw new ChorusError('invalid_state', `the ${kind} data channel is not available`);
    }
    if (!this.isOpen(reliable)) {
      if (this._queued.length >= MAX_QUEUED) {
        throw new ChorusError('invalid_state', `the ${kind} data channel is still opening (${MAX_QUEUED} queued)`);
      }
      this._queued.push({ kind, frame });
      return;
    }
    channel.send(frame);
  }

  _flush() {
    const waiting = this._queued;
    this._queued = [];
    for (const m of waiting) {
      if (this.isOpen(m.kind === 'reliable')) this._channels[m.kind].send(m.frame);
      else this._queued.push(m);
    }
  }
}
