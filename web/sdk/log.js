/**
 * Chorus SDK — diagnostics shared by the modules: the log prefix, a logger call that can never throw, and
 * the one-line summaries of signaling messages that debug logging prints (SDP and tokens abbreviated).
 *
 * Holds no state; which logger to use and whether to debug is the Room's (`room.logger`, `room.debug`).
 */

export const LOG_PREFIX = '[chorus]';

/** Calls `logger[level]` (or `logger.log`) with the prefix; a broken logger must not break the SDK. */
export function logTo(logger, level, ...args) {
  try {
    (logger[level] || logger.log).call(logger, LOG_PREFIX, ...args);
  } catch (_) {
    /* a broken logger must not break the SDK */
  }
}

/** A one-line summary of a signaling message for debug logs (SDP and tokens abbreviated). */
export function describe(msg) {
  const copy = { ...msg };
  if (typeof copy.sdp === 'string') copy.sdp = `<${copy.sdp.length} bytes of SDP>`;
  if (typeof copy.token === 'string') copy.token = `<token ${copy.token.length} chars>`;
  if (typeof copy.resumeToken === 'string') copy.resumeToken = '<resumeToken>';
  if (copy.resume) copy.resume = { ...copy.resume, resumeToken: '<resumeToken>' };
  return JSON.stringify(copy);
}
