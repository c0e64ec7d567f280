// The patient page: link → pre-call check → consent → waiting room → call → end.
// Protocol: docs/PROTOCOL.md. Everything the doctor and the patient exchange
// (name, SDP, candidates, bye) is sealed with keys derived from the link key,
// which lives only in the URL fragment and never leaves this page.
//
// Never log the token, the link key, SDP or candidates.

import { b64uDecode, tokenHash, Sealer, Opener, sasDisplay, sealedFrame } from './seal.js';
import { pickLanguage, translator, applyTranslations } from './i18n.js';
import { acquireMedia, stopStream, startMeter, playTestTone, checkNetwork, resumeAudio } from './check.js';
import { Call, sanitizeIceServers } from './call.js';

const PING_MS = 20000;
const NAME_MAX = 64; // code points
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
const BYE_TIMEOUT_MS = 1000;
const SCREENS = ['screen-loading', 'screen-check', 'screen-waiting', 'screen-call', 'screen-ended', 'screen-error'];

const $ = (id) => document.getElementById(id);

const langs = navigator.languages && navigator.languages.length ? Array.from(navigator.languages) : [navigator.language];
const lang = pickLanguage(langs);
const t = translator(lang);

// All mutable state of the page.
const S = {
  token: '', // as in the URL (base64url); sent in hello only
  linkKey: null, // 32 bytes from the fragment; never sent
  resumeKey: '', // sessionStorage key: derived from the token hash, not the token
  name: '',
  phase: 'check', // check | waiting | call | done
  done: false, // ended, left or failed: nothing more is sent or shown
  // media
  local: null, // MediaStream (possibly without tracks)
  mediaPromise: null, // resolves to the MediaStream once the browser answered
  meter: null,
  // signalling
  ws: null,
  pingTimer: 0,
  reconnectTimer: 0,
  attempt: 0,
  consultation: null,
  iceServers: [],
  sealer: null, // p2d, a new epoch per connection and per doctor (re)join
  opener: null, // d2p, kept for the whole page so old envelopes cannot be replayed
  sendChain: Promise.resolve(), // seal+send strictly in seq order
  recvChain: Promise.resolve(), // handle incoming messages strictly in order
  peerAbsent: false,
  failing: false, // an envelope failed: only the goodbye goes out, nothing is read
  everAdmitted: false,
  // call
  call: null,
  wakeLock: null,
};

// ------------------------------------------------------------------ screens

function show(id) {
  for (const s of SCREENS) $(s).hidden = s !== id;
  // Move focus to the new screen's heading so screen readers announce it.
  const h = $(id).querySelector('h1');
  if (h) h.focus();
}

function announce(text) {
  const el = $('announcer');
  el.textContent = '';
  // A fresh text node after a tick is announced even if it repeats.
  setTimeout(() => {
    el.textContent = text;
  }, 50);
}

function setStatus(id, state, text) {
  const el = $(id);
  el.dataset.state = state;
  el.textContent = text;
}

function showError(code, messageKey, allowReload) {
  teardown();
  $('error-title').textContent = t(code === 'incomplete_link' ? 'incompleteTitle' : 'errorTitle');
  $('error-message').textContent = t(messageKey);
  $('error-code').textContent = code;
  $('btn-reload').hidden = !allowReload;
  show('screen-error');
}

// --------------------------------------------------------------------- link

/** {token, tokenBytes, linkKey} from /c/<token>#<linkkey>, or null. */
function parseLink() {
  const m = /^\/c\/([A-Za-z0-9_-]+)\/?$/.exec(location.pathname);
  const key = location.hash.replace(/^#/, '');
  if (!m || !key) return null;
  try {
    const tokenBytes = b64uDecode(m[1]);
    const linkKey = b64uDecode(key);
    if (tokenBytes.length !== 32 || linkKey.length !== 32) return null;
    return { token: m[1], tokenBytes, linkKey };
  } catch (_e) {
    return null;
  }
}

function loadResume() {
  try {
    return sessionStorage.getItem(S.resumeKey);
  } catch (_e) {
    return null;
  }
}

function saveResume(secret) {
  try {
    sessionStorage.setItem(S.resumeKey, secret);
  } catch (_e) {
    /* private mode: resuming after a reload will not work, the rest does */
  }
}

function clearResume() {
  try {
    sessionStorage.removeItem(S.resumeKey);
  } catch (_e) {
    /* nothing stored */
  }
}

// ---------------------------------------------------------- pre-call check

const CAMERA_TEXT = {
  ok: 'cameraOk',
  denied: 'cameraDenied',
  missing: 'cameraMissing',
  busy: 'cameraBusy',
  unsupported: 'cameraUnsupported',
  error: 'cameraError',
};
const MIC_TEXT = {
  ok: 'micOk',
  denied: 'micDenied',
  missing: 'micMissing',
  busy: 'micBusy',
  unsupported: 'micUnsupported',
  error: 'micError',
};

function startChecks() {
  show('screen-check');
  setStatus('check-speaker-status', 'idle', t('speakerIdle'));
  setStatus('check-network-status', 'checking', t('checking'));
  checkNetwork().then((r) => {
    const key = r === 'ok' ? 'networkOk' : r === 'no_webrtc' ? 'networkNoWebrtc' : 'networkFail';
    setStatus('check-network-status', r, t(key));
  });
  S.mediaPromise = runMediaCheck();
}

async function runMediaCheck() {
  setStatus('check-camera-status', 'checking', t('waitingPermission'));
  setStatus('check-mic-status', 'checking', t('waitingPermission'));
  $('btn-retry-media').hidden = true;
  const r = await acquireMedia();
  S.local = r.stream;
  if (S.phase !== 'check') return r.stream; // joined meanwhile: no preview to draw
  const preview = $('preview-video');
  preview.srcObject = r.camera === 'ok' ? r.stream : null;
  $('preview').hidden = r.camera !== 'ok';
  setStatus('check-camera-status', r.camera, t(CAMERA_TEXT[r.camera]));
  setStatus('check-mic-status', r.mic, t(MIC_TEXT[r.mic]));
  $('mic-meter').hidden = r.mic !== 'ok';
  if (r.mic === 'ok') {
    S.meter = startMeter(r.stream, $('mic-meter-fill'), () => {
      if (S.phase === 'check') setStatus('check-mic-status', 'ok', t('micOk') + ' ' + t('micHeard'));
    });
  }
  $('btn-retry-media').hidden = r.camera === 'ok' && r.mic === 'ok';
  return r.stream;
}

function stopMeter() {
  if (S.meter) S.meter.stop();
  S.meter = null;
}

async function retryMedia() {
  resumeAudio();
  stopMeter();
  await S.mediaPromise;
  stopStream(S.local);
  S.mediaPromise = runMediaCheck();
}

async function speakerTest() {
  const btn = $('btn-speaker-test');
  btn.disabled = true;
  setStatus('check-speaker-status', 'playing', t('speakerPlaying'));
  try {
    await playTestTone();
    setStatus('check-speaker-status', 'done', t('speakerDone'));
  } catch (_e) {
    setStatus('check-speaker-status', 'error', t('speakerError'));
  } finally {
    btn.disabled = false;
  }
}

function join() {
  if (S.phase !== 'check') return;
  if (!$('consent').checked) {
    $('consent-error').hidden = false;
    $('consent').focus();
    return;
  }
  resumeAudio();
  S.name = Array.from($('display-name').value.trim()).slice(0, NAME_MAX).join('');
  S.phase = 'waiting';
  stopMeter();
  $('preview-video').srcObject = null;
  $('waiting-status').textContent = t('waitingConnecting');
  show('screen-waiting');
  connect();
}

// ---------------------------------------------------------------- WebSocket

function wsUrl() {
  return (location.protocol === 'https:' ? 'wss' : 'ws') + '://' + location.host + '/ws';
}

function connect() {
  clearTimeout(S.reconnectTimer);
  S.reconnectTimer = 0;
  if (S.done) return;
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch (_e) {
    scheduleReconnect();
    return;
  }
  S.ws = ws;
  S.sealer = null; // until `welcome`: nothing sealed goes out on this connection before it
  ws.onopen = () => {
    if (ws !== S.ws) return;
    const hello = { type: 'hello', role: 'patient', token: S.token };
    const resume = loadResume();
    if (resume) hello.resume = resume;
    sendPlain(hello);
    clearInterval(S.pingTimer);
    S.pingTimer = setInterval(() => sendPlain({ type: 'ping' }), PING_MS);
  };
  ws.onmessage = (ev) => {
    if (ws !== S.ws || typeof ev.data !== 'string') return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (_e) {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    // One at a time, in arrival order: sealed envelopes must be opened in
    // sequence, and an offer must be applied before its candidates.
    S.recvChain = S.recvChain.then(() => handleMessage(msg, ws)).catch(() => {});
  };
  ws.onclose = () => {
    if (ws !== S.ws) return;
    socketClosed();
  };
  ws.onerror = () => {
    /* a close event follows */
  };
}

function sendPlain(obj) {
  const ws = S.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(Object.assign({ v: 1 }, obj)));
  return true;
}

/**
 * Seals and sends one payload. Sealing is queued so envelopes leave in seq
 * order. Call signalling (`always` false) is dropped while the doctor is
 * away: the doctor comes back with a fresh receiver, we with a fresh epoch,
 * and it sends a new offer. Resolves to true when sent.
 */
function sendSealed(obj, always) {
  const text = JSON.stringify(obj);
  const run = S.sendChain.then(async () => {
    const ws = S.ws;
    const sealer = S.sealer;
    if (S.done && obj.kind !== 'bye') return false;
    if (!ws || ws.readyState !== WebSocket.OPEN || !sealer) return false;
    if (!always && S.peerAbsent) return false;
    const env = await sealer.seal(text);
    // Connection or epoch changed while sealing: drop it. Its seq is never
    // reused, and the next envelope starts the new epoch at 0.
    if (ws !== S.ws || sealer !== S.sealer || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(sealedFrame(env));
    return true;
  });
  S.sendChain = run.catch(() => false);
  return run;
}

async function rotateSealer() {
  S.sealer = null; // nothing goes out between the two epochs
  S.sealer = await Sealer.create(S.linkKey, S.consultation, 'p2d');
}

function sendHello() {
  const hello = { kind: 'hello' };
  if (S.name) hello.name = S.name;
  return sendSealed(hello, true);
}

function socketClosed() {
  clearInterval(S.pingTimer);
  S.pingTimer = 0;
  S.ws = null;
  S.sealer = null;
  if (S.done) return;
  notice('signallingLost');
  scheduleReconnect();
}

function scheduleReconnect() {
  if (S.done || S.reconnectTimer) return;
  const base = BACKOFF_MS[Math.min(S.attempt, BACKOFF_MS.length - 1)];
  S.attempt++;
  // Jitter so a clinic's worth of phones don't come back in lockstep.
  const delay = Math.round(base * (0.8 + Math.random() * 0.4));
  S.reconnectTimer = setTimeout(connect, delay);
}

/** A transient line: in the waiting room, its status; in the call, under the video. */
function notice(key, vars) {
  const text = key ? t(key, vars) : '';
  if (S.phase === 'waiting') {
    $('waiting-status').textContent = text || t('waitingText');
  } else if (S.phase === 'call') {
    const el = $('call-notice');
    el.textContent = text;
    el.hidden = !text;
  }
}

async function handleMessage(msg, ws) {
  if (ws !== S.ws || S.done) return;
  switch (msg.type) {
    case 'welcome':
      return onWelcome(msg);
    case 'sealed':
      return onSealed(msg);
    case 'admitted':
      // The node hands relay credentials to a patient only once admitted.
      if (Array.isArray(msg.ice_servers) && msg.ice_servers.length) {
        S.iceServers = sanitizeIceServers(msg.ice_servers);
      }
      return onAdmitted(false);
    case 'peer_joined':
      // The doctor (re)connected with a fresh receiver: new epoch from seq 0.
      await rotateSealer();
      S.peerAbsent = false;
      notice(null);
      return sendHello();
    case 'peer_left':
      S.peerAbsent = true;
      return notice('doctorAway');
    case 'ended':
      return finish(msg.reason === 'expired' ? 'expired' : 'node');
    case 'error':
      return onServerError(msg);
    default:
      return; // pong, and types a later node may add
  }
}

/** Tells the node the media is up, with the kind of path (aggregate metrics). */
function sendConnected(path) {
  sendPlain(path === 'direct' || path === 'relay' ? { type: 'connected', path } : { type: 'connected' });
}

async function onWelcome(msg) {
  if (typeof msg.consultation !== 'string' || !msg.consultation) {
    return showError('bad_request', 'errGeneric', true);
  }
  S.attempt = 0;
  if (typeof msg.resume === 'string' && msg.resume) saveResume(msg.resume);
  if (S.opener && S.consultation !== msg.consultation) S.opener = null;
  S.consultation = msg.consultation;
  S.iceServers = sanitizeIceServers(msg.ice_servers);
  if (!S.opener) S.opener = new Opener(S.linkKey, S.consultation, 'd2p');
  // The doctor's absence only matters once admitted (peer_left / peer_joined
  // follow it from then on); before admission the doctor may come and go.
  S.peerAbsent = (msg.state === 'admitted' || msg.state === 'in_call') && msg.peer_present === false;
  await rotateSealer();
  notice(null);
  // The knock: our (optional) name, sealed for the doctor only.
  sendHello();
  if (msg.state === 'admitted' || msg.state === 'in_call') {
    // Resumed after admission (reconnect or reload).
    await onAdmitted(true);
  } else if (S.phase === 'call') {
    // The node no longer counts us as admitted: back to the waiting room.
    if (S.call) S.call.close();
    S.call = null;
    $('remote-video').srcObject = null;
    S.phase = 'waiting';
    $('waiting-status').textContent = t('waitingText');
    show('screen-waiting');
  }
  if (S.call) {
    // Fresh TURN credentials for any ICE restart; tell the node we are
    // still connected, since this is a new connection.
    S.call.iceServers = S.iceServers;
    if (S.call.isConnected) sendConnected(S.call.path);
  }
}

async function onAdmitted(fromWelcome) {
  S.everAdmitted = true;
  if (!fromWelcome) {
    // The doctor is here (it just admitted us). The knock may never have
    // reached it (sent while it was away): a fresh epoch from seq 0 and the
    // name again, so its receiver needs nothing from before.
    S.peerAbsent = false;
    await rotateSealer();
    sendHello();
  }
  if (S.phase !== 'call') enterCall();
}

async function onSealed(msg) {
  if (!S.opener || S.failing) return;
  let text;
  try {
    text = await S.opener.open({ epoch: msg.epoch, seq: msg.seq, ct: msg.ct });
  } catch (_e) {
    // Replayed, reordered, reflected, altered or forged: fail closed.
    return failClosed();
  }
  let body;
  try {
    body = JSON.parse(text);
  } catch (_e) {
    return;
  }
  if (!body || typeof body !== 'object' || typeof body.kind !== 'string') return;
  switch (body.kind) {
    case 'offer': {
      if (typeof body.sdp !== 'string') return;
      if (S.phase !== 'call') enterCall(); // an authenticated offer implies admission
      const stream = await S.mediaPromise; // the browser may still be asking for permission
      if (S.done || !S.call) return;
      S.call.localStream = stream;
      try {
        await S.call.handleOffer(body.sdp);
      } catch (_e) {
        setConn('failed');
      }
      return;
    }
    case 'candidate': {
      if (typeof body.candidate !== 'string' || !S.call) return;
      return S.call.addCandidate({
        candidate: body.candidate,
        sdpMid: typeof body.sdpMid === 'string' ? body.sdpMid : null,
        sdpMLineIndex: Number.isInteger(body.sdpMLineIndex) ? body.sdpMLineIndex : null,
      });
    }
    case 'end_of_candidates':
      if (S.call) return S.call.addCandidate(null);
      return;
    case 'bye':
      return finish('doctor');
    case 'chat':
      if (typeof body.text === 'string') showDoctorMessage(body.text);
      return;
    default:
      return; // hello, answer and unknown kinds
  }
}

function onServerError(msg) {
  const code = typeof msg.code === 'string' ? msg.code : 'error';
  if (code === 'unexpected') return; // not fatal
  if (code === 'idle_timeout' || code === 'rate_limited') {
    // The node closes the socket; reconnect, later for rate limiting.
    if (code === 'rate_limited') S.attempt = Math.max(S.attempt, 3);
    return;
  }
  if (code === 'bad_token' && S.everAdmitted) {
    // The consultation ended while we were away.
    return finish('node');
  }
  S.done = true;
  if (code === 'bad_token' || code === 'forbidden') return showError('bad_token', 'errBadToken', false);
  if (code === 'seat_taken') return showError('seat_taken', 'errSeatTaken', true);
  if (code === 'replaced') return showError('replaced', 'errReplaced', true);
  return showError(code, 'errGeneric', true);
}

// --------------------------------------------------------------------- call

const CONN_TEXT = {
  connecting: 'connConnecting',
  direct: 'connDirect',
  relay: 'connRelay',
  reconnecting: 'connReconnecting',
  failed: 'connFailed',
};

function setConn(state) {
  setStatus('conn-state', state, t(CONN_TEXT[state]));
}

function resetSas() {
  const el = $('sas');
  el.textContent = t('sasPending');
  delete el.dataset.sas;
}

function enterCall() {
  S.phase = 'call';
  show('screen-call');
  setConn('connecting');
  resetSas();
  notice(S.peerAbsent ? 'doctorAway' : null);
  S.call = new Call({
    iceServers: S.iceServers,
    localStream: S.local,
    send: (obj) => sendSealed(obj, false),
    onState: setConn,
    onConnected: (path) => sendConnected(path),
    onNewPeer: () => {
      resetSas();
      $('remote-video').srcObject = null;
    },
    onSas: (code) => {
      const el = $('sas');
      el.textContent = sasDisplay(code);
      el.dataset.sas = code;
      announce(t('sasLabel') + ' ' + sasDisplay(code));
    },
    onRemoteStream: (ms) => {
      const rv = $('remote-video');
      if (rv.srcObject !== ms) rv.srcObject = ms;
      playRemote();
    },
  });
  S.mediaPromise.then((stream) => {
    if (S.done) return;
    const lv = $('local-video');
    const hasVideo = stream.getVideoTracks().length > 0;
    lv.srcObject = hasVideo ? stream : null;
    lv.hidden = !hasVideo;
    updateMediaButtons();
  });
  requestWakeLock();
}

function playRemote() {
  const rv = $('remote-video');
  const p = rv.play();
  // Autoplay with sound can be refused (old Safari): ask for a tap.
  if (p && p.catch) p.catch(() => ($('btn-play').hidden = false));
}

function updateMediaButtons() {
  const stream = S.local || new MediaStream();
  const a = stream.getAudioTracks()[0];
  const v = stream.getVideoTracks()[0];
  const mute = $('btn-mute');
  mute.disabled = !a;
  mute.textContent = !a ? t('noMic') : a.enabled ? t('mute') : t('unmute');
  mute.dataset.off = a && !a.enabled ? 'true' : 'false';
  const cam = $('btn-camera');
  cam.disabled = !v;
  cam.textContent = !v ? t('noCamera') : v.enabled ? t('cameraOff') : t('cameraOn');
  cam.dataset.off = v && !v.enabled ? 'true' : 'false';
  $('local-video').classList.toggle('off', !!v && !v.enabled);
}

function toggleTrack(kind) {
  if (!S.local) return;
  const tracks = kind === 'audio' ? S.local.getAudioTracks() : S.local.getVideoTracks();
  if (!tracks.length) return;
  // enabled=false sends silence / black frames: no renegotiation needed.
  const on = !tracks[0].enabled;
  for (const tr of tracks) tr.enabled = on;
  updateMediaButtons();
}

/** Sends a sealed goodbye; settles when it is out or after BYE_TIMEOUT_MS. */
function sayBye(reason) {
  const timeout = new Promise((resolve) => setTimeout(resolve, BYE_TIMEOUT_MS));
  return Promise.race([sendSealed({ kind: 'bye', reason }, true), timeout]);
}

async function hangup() {
  if (S.done) return;
  $('btn-hangup').disabled = true;
  await sayBye('hangup');
  finish('you');
}

function leaveWaiting() {
  if (S.done) return;
  finish('left');
}

function showDoctorMessage(text) {
  const line = t('doctorMessage', { text: text.slice(0, 500) });
  if (S.phase === 'waiting') {
    const el = $('waiting-message');
    el.textContent = line;
    el.hidden = false;
  } else if (S.phase === 'call') {
    notice('doctorMessage', { text: text.slice(0, 500) });
  }
  announce(line);
}

async function requestWakeLock() {
  // Keep a phone's screen on during the call, where supported.
  try {
    if (navigator.wakeLock && !S.wakeLock) {
      S.wakeLock = await navigator.wakeLock.request('screen');
      S.wakeLock.addEventListener('release', () => {
        S.wakeLock = null;
      });
    }
  } catch (_e) {
    S.wakeLock = null;
  }
}

// ------------------------------------------------------------------ endings

const ENDED_TEXT = {
  you: 'endedByYou',
  doctor: 'endedByDoctor',
  node: 'endedByNode',
  expired: 'endedExpired',
  left: 'leftWaiting',
};

/** Stops media, timers and the socket. Idempotent. */
function teardown() {
  S.done = true;
  stopMeter();
  if (S.call) S.call.close();
  S.call = null;
  stopStream(S.local);
  if (S.mediaPromise) S.mediaPromise.then(stopStream); // a prompt answered after the end
  for (const id of ['preview-video', 'local-video', 'remote-video']) $(id).srcObject = null;
  clearInterval(S.pingTimer);
  clearTimeout(S.reconnectTimer);
  S.pingTimer = S.reconnectTimer = 0;
  if (S.ws) {
    const ws = S.ws;
    S.ws = null;
    try {
      ws.close(1000);
    } catch (_e) {
      /* already closed */
    }
  }
  S.sealer = null;
  if (S.wakeLock) S.wakeLock.release().catch(() => {});
}

/**
 * how: you (hung up) | doctor (sealed bye) | node (`ended`) | expired | left.
 * We free the seat with `leave` unless the node already ended everything.
 */
function finish(how) {
  if (S.done) return;
  if (how !== 'node' && how !== 'expired') sendPlain({ type: 'leave' });
  clearResume();
  teardown();
  $('ended-detail').textContent = t(ENDED_TEXT[how]);
  $('btn-rejoin').hidden = how === 'node' || how === 'expired';
  show('screen-ended');
}

/**
 * Any envelope that fails the checks: stop everything, say so, don't retry.
 * The doctor is told in a sealed goodbye (our own keys are intact), so both
 * sides end with the same clear error; the seat is given up.
 */
async function failClosed() {
  if (S.done || S.failing) return;
  S.failing = true;
  S.peerAbsent = true; // nothing but the goodbye goes out from here
  await sayBye('integrity_error');
  if (!S.done) sendPlain({ type: 'leave' });
  showError('integrity_error', 'errIntegrity', false);
}

// --------------------------------------------------------------------- start

function wire() {
  $('btn-speaker-test').addEventListener('click', speakerTest);
  $('btn-retry-media').addEventListener('click', retryMedia);
  $('btn-join').addEventListener('click', join);
  $('consent').addEventListener('change', () => {
    if ($('consent').checked) $('consent-error').hidden = true;
  });
  // No <form> (the CSP forbids form submission): Enter in the name field joins.
  $('display-name').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') join();
  });
  $('btn-leave').addEventListener('click', leaveWaiting);
  $('btn-mute').addEventListener('click', () => toggleTrack('audio'));
  $('btn-camera').addEventListener('click', () => toggleTrack('video'));
  $('btn-hangup').addEventListener('click', hangup);
  $('btn-play').addEventListener('click', () => {
    $('btn-play').hidden = true;
    playRemote();
  });
  $('btn-rejoin').addEventListener('click', () => location.reload());
  $('btn-reload').addEventListener('click', () => location.reload());
  // Browsers keep audio suspended until a gesture.
  document.addEventListener('pointerdown', resumeAudio, { passive: true });
  document.addEventListener('keydown', resumeAudio);
  window.addEventListener('online', () => {
    if (!S.done && !S.ws && S.reconnectTimer) connect();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && S.phase === 'call' && !S.done) requestWakeLock();
  });
}

async function main() {
  document.documentElement.lang = lang;
  document.title = t('title');
  applyTranslations(document, t);
  wire();
  const link = parseLink();
  if (!link) {
    S.phase = 'done';
    return showError('incomplete_link', 'incompleteText', false);
  }
  S.token = link.token;
  S.linkKey = link.linkKey;
  S.resumeKey = 'telenode.resume.' + (await tokenHash(link.tokenBytes));
  startChecks();
}

main().catch(() => {
  // No WebCrypto (very old browser, or a page not served over HTTPS).
  S.phase = 'done';
  showError('unsupported_browser', 'errUnsupported', false);
});
