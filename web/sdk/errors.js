/**
 * Chorus SDK — `ChorusError`, the one error type the SDK rejects with and emits as `error`.
 *
 * Owns only the class; which codes exist is the protocol's business (`docs/protocol.md`) plus the SDK's own
 * (`connection_failed`, `timeout`, `invalid_state`, `unknown_track`, `negotiation_failed`, `bad_message`,
 * `disconnected`).
 */

/** An error from the server (`code` is the protocol's stable error code) or from the SDK itself. */
export class ChorusError extends Error {
  constructor(code, message, fatal = false) {
    super(message || code);
    this.name = 'ChorusError';
    this.code = code;
    this.fatal = fatal;
  }
}
