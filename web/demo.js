// The Chorus demo page: joins a room, publishes camera + microphone, shows everyone.
//
// Query string: ?room=NAME&identity=ID&name=DISPLAY_NAME[&token=JWT][&ws=WS_URL][&debug=1]
//   [&quality=low|medium|high]  default receive quality of remote video (without it: adaptive stream, by tile size)
//   [&publish=0]                join as a viewer that sends nothing
//   [&codec=vp8|h264|vp9|av1]   the codec to publish video in (default: the browser's)
// Without `token`, a token comes from the dev-mode endpoint `GET /dev/token`.
//
// For automated tests the page exposes:
//   window.chorusRoom     the Room (chat: window.chorusRoom.chat.send(text), .edit, .delete, .history, …)
//   window.chorusState    'starting' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'error'
//   window.chorusError    {code, message} after a failed connect
//   window.chorusEvents   array of {type, identity, ...} for every room event
//   window.chorusStats()  Promise<{[identity]: {videoFramesDecoded, audioPacketsReceived, audioBytesReceived, ...}}>
//   window.chorusPath     {publisher, subscriber}: the network path of each connection (udp | tcp | relay)
//   window.chorusServerStats()  Promise<{estimateBps, subscriptions: [{trackSid, currentLayer, ...}]}> (server side)

import { Room } from '/sdk/chorus.js';

const params = new URLSearchParams(location.search);
const roomName = params.get('room') || 'demo';
const identity = params.get('identity') || `guest-${Math.random().toString(36).slice(2, 8)}`;
const displayName = params.get('name') || identity;
const debug = params.has('debug') && params.get('debug') !== '0';
const quality = ['low', 'medium', 'high'].includes(params.get('quality')) ? params.get('quality') : null;
const publish = params.get('publish') !== '0';
// `&relay=1`: connect through the TURN server only (iceTransportPolicy 'relay'), to try the fallback path.
const relayOnly = params.get('relay') === '1';
// `&codec=h264|vp9|av1|vp8`: the codec to publish video in.
const videoCodec = ['vp8', 'h264', 'vp9', 'av1'].includes(params.get('codec')) ? params.get('codec') : null;

const $ = (id) => document.getElementById(id);
const room = new Room({
  debug,
  defaultQuality: quality,
  adaptiveStream: !quality,
  iceTransportPolicy: relayOnly ? 'relay' : 'all',
  videoCodec,
});
const tiles = new Map(); // participant sid -> {el, video, audio}

window.chorusRoom = room;
window.chorusState = 'starting';
window.chorusError = null;
window.chorusEvents = [];
window.chorusStats = async () => {
  const byIdentity = {};
  for (const s of Object.values(await room.getRemoteStats())) byIdentity[s.identity || s.sid] = s;
  return byIdentity;
};
window.chorusServerStats = () => room.getServerStats();
window.chorusPath = room.connectionPath;
room.on('connectionPath', (paths) => {
  window.chorusPath = paths;
  const show = (p) => (p ? (p.path === 'relay' ? `relay/${p.relayProtocol || '?'}` : p.path) : '…');
  $('path').textContent = `via ${show(paths.publisher)} / ${show(paths.subscriber)}`;
  $('path').title = 'publisher / subscriber connection: udp, tcp (ICE-TCP) or relay (TURN)';
  $('path').hidden = false;
});

function setStatus(state, text = state) {
  window.chorusState = state;
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', state === 'error' || state === 'disconnected');
}

function showMessage(html) {
  const el = $('message');
  el.innerHTML = html;
  el.hidden = false;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function logEvent(type, fields = {}) {
  window.chorusEvents.push({ type, t: Date.now(), ...fields });
}

// ---------------------------------------------------------------------------------------------
// Tiles

function tileFor(participant) {
  let tile = tiles.get(participant.sid);
  if (tile) return tile;
  const el = document.createElement('article');
  el.className = 'tile';
  el.dataset.identity = participant.identity;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // the video element carries video only; sound plays through `audio`
  const audio = document.createElement('audio');
  audio.autoplay = true;
  const footer = document.createElement('footer');
  footer.innerHTML =
    `<span class="who">${escapeHtml(participant.name || participant.identity)}` +
    `<span class="identity">${escapeHtml(participant.identity)}</span></span>` +
    '<span class="badges"><span class="badge res" title="received resolution"></span>' +
    '<span class="badge paused" hidden title="paused: not enough bandwidth">paused</span>' +
    '<span class="badge mic-off" hidden>mic off</span><span class="badge cam-off" hidden>camera off</span></span>' +
    '<select class="quality" title="receive quality"><option value="">auto</option>' +
    '<option value="low">low</option><option value="medium">medium</option><option value="high">high</option></select>';
  el.append(video, audio, footer);
  $('tiles').append(el);
  tile = { el, video, audio };
  tiles.set(participant.sid, tile);
  const select = footer.querySelector('.quality');
  select.value = quality || '';
  select.onchange = () => {
    const cam = [...participant.tracks.values()].find((t) => t.kind === 'video');
    if (cam) room.setTrackQuality(cam.sid, select.value || null);
  };
  updateBadges(participant);
  return tile;
}

// Each tile shows the resolution it receives (it changes with the simulcast layer).
setInterval(() => {
  for (const tile of tiles.values()) {
    const { videoWidth: w, videoHeight: h } = tile.video;
    tile.el.querySelector('.res').textContent = w && h ? `${w}×${h}` : '';
  }
}, 500);

function updateBadges(participant) {
  const tile = tiles.get(participant.sid);
  if (!tile) return;
  const tracks = [...participant.tracks.values()];
  const mic = tracks.find((t) => t.kind === 'audio');
  const cam = tracks.find((t) => t.kind === 'video');
  tile.el.querySelector('.mic-off').hidden = !(mic ? mic.muted : true);
  tile.el.querySelector('.cam-off').hidden = !(cam ? cam.muted : true);
}

function removeTile(sid) {
  const tile = tiles.get(sid);
  if (!tile) return;
  tile.video.srcObject = null;
  tile.audio.srcObject = null;
  tile.el.remove();
  tiles.delete(sid);
}

function playAudio(audio) {
  audio.play().catch((err) => {
    console.warn('[demo] audio did not start:', err.name, err.message);
    if (err.name !== 'NotAllowedError') return;
    // Autoplay policy: sound needs a click on this page first.
    const button = $('enable-audio');
    button.hidden = false;
    button.onclick = () => {
      button.hidden = true;
      for (const t of tiles.values()) t.audio.play().catch(() => {});
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Room events

room.on('participantJoined', (p) => {
  logEvent('participantJoined', { identity: p.identity, participantSid: p.sid });
  tileFor(p);
});
room.on('participantLeft', (p, reason) => {
  logEvent('participantLeft', { identity: p.identity, participantSid: p.sid, reason });
  removeTile(p.sid);
});
room.on('trackPublished', (t) => {
  logEvent('trackPublished', { identity: t.participant.identity, trackSid: t.sid, kind: t.kind });
  updateBadges(t.participant);
});
room.on('trackUnpublished', (t) => {
  logEvent('trackUnpublished', { identity: t.participant.identity, trackSid: t.sid, kind: t.kind });
  updateBadges(t.participant);
});
room.on('trackSubscribed', (t) => {
  logEvent('trackSubscribed', { identity: t.participant.identity, trackSid: t.sid, kind: t.kind, mid: t.mid });
  const tile = tileFor(t.participant);
  if (t.kind === 'video') t.attach(tile.video);
  else {
    t.attach(tile.audio);
    playAudio(tile.audio);
  }
});
room.on('trackUnsubscribed', (t) => {
  logEvent('trackUnsubscribed', { identity: t.participant.identity, trackSid: t.sid, kind: t.kind });
});
room.on('trackMuted', ({ participant, trackSid, muted }) => {
  logEvent('trackMuted', { identity: participant.identity, trackSid, muted });
  updateBadges(participant);
});
room.on('streamStateChanged', ({ track, paused }) => {
  logEvent('streamStateChanged', { identity: track.participant.identity, trackSid: track.sid, paused });
  const tile = tiles.get(track.participant.sid);
  if (tile) tile.el.querySelector('.paused').hidden = !paused;
});
room.on('publishLayersChanged', ({ track, enabled, layers }) =>
  logEvent('publishLayersChanged', { trackSid: track.sid, enabled, layers }),
);
// Active speakers: their tiles (the local one included) get a highlight.
room.on('activeSpeakersChanged', (speakers) => {
  logEvent('activeSpeakers', { identities: speakers.map((p) => p.identity) });
  const sids = new Set(speakers.map((p) => p.sid));
  for (const [sid, tile] of tiles) tile.el.classList.toggle('speaking', sids.has(sid));
  const local = room.localParticipant;
  $('local-tile').classList.toggle('speaking', !!local && sids.has(local.sid));
});
room.on('localTrackPublished', (t) => logEvent('localTrackPublished', { trackSid: t.sid, kind: t.kind }));
room.on('reconnecting', () => {
  logEvent('reconnecting');
  setStatus('reconnecting', 'reconnecting…');
});
room.on('reconnected', ({ rejoined } = {}) => {
  logEvent('reconnected', { rejoined: !!rejoined });
  setStatus('connected', `connected as ${identity}`);
});
room.on('disconnected', ({ reason }) => {
  logEvent('disconnected', { reason });
  setStatus('disconnected', `disconnected (${reason})`);
  for (const sid of [...tiles.keys()]) removeTile(sid);
  setControls(false);
  setChatEnabled(false);
});
room.on('error', (err) => logEvent('error', { code: err && err.code, message: err && err.message }));

// ---------------------------------------------------------------------------------------------
// Chat panel: the history (own messages get edit/delete), who is typing, and the input

let editingId = null; // the message the form edits, or null to send a new one

function renderChat() {
  const list = $('chat-list');
  const own = room.localParticipant && room.localParticipant.identity;
  list.replaceChildren(
    ...room.chat.history.map((m) => {
      const li = document.createElement('li');
      li.className = 'chat-item';
      li.dataset.id = m.id;
      li.dataset.identity = m.identity;
      const time = new Date(m.timestamp).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      li.innerHTML =
        `<span class="chat-who">${escapeHtml(m.name || m.identity)}</span>` +
        `<time class="chat-time">${escapeHtml(time)}</time>` +
        `<span class="chat-text">${escapeHtml(m.text)}</span>` +
        (m.editedAt ? '<span class="chat-edited">(edited)</span>' : '');
      if (m.identity === own) {
        const editBtn = document.createElement('button');
        editBtn.className = 'chat-edit';
        editBtn.textContent = 'edit';
        editBtn.onclick = () => startEdit(m);
        const delBtn = document.createElement('button');
        delBtn.className = 'chat-delete';
        delBtn.textContent = 'delete';
        delBtn.onclick = () => room.chat.delete(m.id).catch(showChatError);
        li.append(editBtn, delBtn);
      }
      return li;
    }),
  );
  list.scrollTop = list.scrollHeight;
}

function renderTyping() {
  const who = [...room.chat.typing.values()];
  $('chat-typing').textContent =
    who.length === 0 ? '' : `${who.join(', ')} ${who.length === 1 ? 'is' : 'are'} typing…`;
}

function showChatError(err) {
  const el = $('chat-error');
  el.textContent = `${err.code || 'error'}: ${err.message}`;
  el.hidden = false;
  setTimeout(() => (el.hidden = true), 4000);
}

function startEdit(m) {
  editingId = m.id;
  $('chat-input').value = m.text;
  $('chat-send').textContent = 'Save';
  $('chat-cancel').hidden = false;
  $('chat-input').focus();
}

function endEdit() {
  editingId = null;
  $('chat-input').value = '';
  $('chat-send').textContent = 'Send';
  $('chat-cancel').hidden = true;
}

function setChatEnabled(enabled) {
  $('chat-input').disabled = !enabled;
  $('chat-send').disabled = !enabled;
}

let typingIdle = null;
$('chat-input').oninput = () => {
  if (editingId) return;
  room.chat.setTyping(true);
  clearTimeout(typingIdle);
  typingIdle = setTimeout(() => room.chat.setTyping(false), 3000);
};
$('chat-cancel').onclick = endEdit;
$('chat-form').onsubmit = async (ev) => {
  ev.preventDefault();
  const text = $('chat-input').value;
  if (!text.trim()) return;
  clearTimeout(typingIdle);
  try {
    if (editingId) await room.chat.edit(editingId, text);
    else await room.chat.send(text);
    endEdit();
  } catch (err) {
    showChatError(err);
  }
};

for (const event of ['history', 'message', 'edited', 'deleted']) {
  room.chat.on(event, (arg) => {
    logEvent(`chat.${event}`, { id: arg && arg.id });
    if (event === 'deleted' && arg.id === editingId) endEdit();
    renderChat();
  });
}
room.chat.on('typing', ({ identity: who, typing }) => {
  logEvent('chat.typing', { identity: who, typing });
  renderTyping();
});

// ---------------------------------------------------------------------------------------------
// Controls

function setControls(enabled) {
  for (const id of ['mute-mic', 'mute-cam', 'leave']) $(id).disabled = !enabled;
}

function toggleMute(source, button, onLabel, offLabel) {
  const track = room.localTracks.find((t) => t.source === source);
  if (!track) return;
  const muted = !track.muted;
  room.setMuted(track, muted);
  button.textContent = muted ? onLabel : offLabel;
  button.classList.toggle('on', muted);
  const badge = $('local-tile').querySelector(source === 'camera' ? '.cam-off' : '.mic-off');
  badge.hidden = !muted;
}

$('mute-mic').onclick = (ev) => toggleMute('microphone', ev.currentTarget, 'Unmute mic', 'Mute mic');
$('mute-cam').onclick = (ev) => toggleMute('camera', ev.currentTarget, 'Turn camera on', 'Turn camera off');
$('leave').onclick = async () => {
  setControls(false);
  await room.leave();
};
window.addEventListener('pagehide', () => {
  if (room.state !== 'disconnected') room.leave();
});

// ---------------------------------------------------------------------------------------------
// Start

async function getToken() {
  const direct = params.get('token');
  const defaultWs = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/rtc`;
  if (direct) return { token: direct, wsUrl: params.get('ws') || defaultWs };
  const q = new URLSearchParams({ room: roomName, identity, name: displayName });
  const res = await fetch(`/dev/token?${q}`);
  if (res.status === 404) {
    const err = new Error('no dev token endpoint');
    err.code = 'no_dev_token';
    throw err;
  }
  if (!res.ok) throw new Error(`GET /dev/token failed: ${res.status} ${await res.text()}`);
  const body = await res.json();
  return { token: body.token, wsUrl: params.get('ws') || body.wsUrl || defaultWs };
}

async function main() {
  $('room-name').textContent = `room “${roomName}”`;
  let creds;
  try {
    creds = await getToken();
  } catch (err) {
    window.chorusError = { code: err.code || 'token_fetch_failed', message: err.message };
    setStatus('error', 'no token');
    if (err.code === 'no_dev_token') {
      showMessage(
        'This server is not in dev mode, so it does not hand out tokens. Create one with ' +
          `<code>chorus token --room ${escapeHtml(roomName)} --identity ${escapeHtml(identity)}</code> ` +
          'and open this page with <code>&amp;token=TOKEN</code> added to the URL.',
      );
    } else showMessage(`Could not get a token: ${escapeHtml(err.message)}`);
    return;
  }

  setStatus('connecting', 'connecting…');
  try {
    await room.connect(creds.wsUrl, creds.token);
  } catch (err) {
    window.chorusError = { code: err.code || 'error', message: err.message };
    setStatus('error', `error: ${err.code || 'error'}`);
    showMessage(`Could not join: <strong>${escapeHtml(err.code || 'error')}</strong> — ${escapeHtml(err.message)}`);
    logEvent('connectFailed', { code: err.code, message: err.message });
    return;
  }
  logEvent('connected', { participantSid: room.localParticipant.sid });
  setChatEnabled(true);
  renderChat();
  setStatus('connected', `connected as ${identity}`);
  for (const p of room.participants.values()) tileFor(p);

  if (!publish) {
    $('leave').disabled = false;
    return; // a viewer: receives everything, sends nothing
  }
  const localTile = $('local-tile');
  $('local-name').textContent = `${displayName} (you)`;
  localTile.hidden = false;
  try {
    const tracks = await room.publishTracks({ video: true, audio: true });
    const video = tracks.find((t) => t.kind === 'video');
    if (video) video.attach($('local-video'));
    setControls(true);
  } catch (err) {
    logEvent('publishFailed', { code: err.code, message: err.message });
    showMessage(`Joined, but could not publish camera/microphone: ${escapeHtml(err.message)}`);
    $('leave').disabled = false;
  }
}

main().catch((err) => {
  console.error('[demo]', err);
  setStatus('error', `error: ${err.message}`);
});
