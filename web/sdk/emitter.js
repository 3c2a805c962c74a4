/**
 * Chorus SDK — the event emitter the Room extends (`on`, `off`, `once`, `emit`).
 *
 * A listener that throws is logged to the console and never breaks the SDK or the other listeners. Knows
 * nothing of which events exist (those are listed in `chorus.js`).
 */

import { LOG_PREFIX } from './log.js';

/** A minimal event emitter; a throwing listener is logged, never breaks the SDK. */
export class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Adds `fn` for `event`; returns `this`. */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return this;
  }

  /** Removes `fn` (or every listener of `event` when `fn` is omitted); returns `this`. */
  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) {
      if (fn) set.delete(fn);
      else set.clear();
    }
    return this;
  }

  /** Like `on`, but only once. */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn(...args);
    };
    return this.on(event, wrapper);
  }

  emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        console.error(LOG_PREFIX, `listener for "${event}" threw`, err);
      }
    }
  }
}
