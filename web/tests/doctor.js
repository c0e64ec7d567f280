// Fake doctor for tests: same seal.js, a browser RTCPeerConnection that
// offers, as the native doctor client does. Fragment: <consultation>.<linkkey>.
// Admits automatically unless the URL has ?manual. State in window.doctor.

import { b64uDecode, Sealer, Opener, fingerprintFromSdp, sas } from '/static/seal.js';

const [cons, keyB64] = location.hash.slice(1).split('.');
const linkKey = b64uDecode(keyB64);
const manual = location.search.includes('manual');
const $ = (id) => document.getElementById(id);

const D = (window.doctor = { state: 'starting', name: null, sas: null, errors: [], kinds: [], connected: false });
let ws = null;
let sealer = null;
const opener = new Opener(linkKey, cons, 'p2d');
let pc = null;
let local = null;
let iceServers = [];
let recv = Promise.resolve();
let sendQ = Promise.resolve();
let pending = [];

function setState(s) {
  D.state = s;
  $('d-state').textContent = s;
}
const plain = (m) => ws && ws.readyState === 1 && ws.send(JSON.stringify(Object.assign({ v: 1 }, m)));
function sealed(obj) {
  const text = JSON.stringify(obj);
  sendQ = sendQ.then(async () => {
    const s = sealer;
    const w = ws;
    if (!s || !w || w.readyState !== 1) return;
    const env = await s.seal(text);
    if (s === sealer && w === ws) w.send(JSON.stringify({ v: 1, type: 'sealed', ...env }));
  });
  return sendQ;
}

function connect() {
  const w = new WebSocket((location.protocol === 'https:' ? 'wss' : 'ws') + '://' + location.host + '/ws');
  ws = w;
  sealer = null;
  w.onopen = () => plain({ type: 'hello', role: 'doctor', consultation: cons, session: 'test' });
  w.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    recv = recv.then(() => handle(m)).catch((e) => D.errors.push(String((e && e.code) || e)));
  };
}

async function handle(m) {
  switch (m.type) {
    case 'welcome':
      sealer = await Sealer.create(linkKey, cons, 'd2p');
      iceServers = m.ice_servers || [];
      if ((m.state === 'admitted' || m.state === 'in_call') && m.peer_present) await startCall();
      return;
    case 'patient_waiting':
      setState('waiting');
      if (!manual) plain({ type: 'admit' });
      return;
    case 'admitted':
      setState('admitted');
      return startCall();
    case 'peer_joined':
      // The patient came back with a fresh receiver: new epoch, fresh call.
      sealer = await Sealer.create(linkKey, cons, 'd2p');
      return startCall();
    case 'peer_left':
      return setState('peer_left');
    case 'sealed':
      return onSealed(m);
    case 'ended':
      return setState('ended');
    case 'error':
      D.errors.push(m.code);
      return;
  }
}

async function onSealed(m) {
  let text;
  try {
    text = await opener.open(m);
  } catch (e) {
    D.errors.push(e.code);
    setState('integrity_error');
    if (pc) pc.close();
    ws.close();
    return;
  }
  const body = JSON.parse(text);
  D.kinds.push(body.kind);
  switch (body.kind) {
    case 'hello':
      D.name = body.name === undefined ? null : body.name;
      $('d-name').textContent = D.name || '(no name)';
      return;
    case 'answer':
      await pc.setRemoteDescription({ type: 'answer', sdp: body.sdp });
      for (const c of pending) await pc.addIceCandidate(c).catch(() => {});
      pending = [];
      D.sas = await sas(fingerprintFromSdp(pc.localDescription.sdp), fingerprintFromSdp(pc.remoteDescription.sdp));
      $('d-sas').textContent = D.sas;
      return;
    case 'candidate': {
      const c = { candidate: body.candidate, sdpMid: body.sdpMid, sdpMLineIndex: body.sdpMLineIndex };
      if (!pc || !pc.remoteDescription) pending.push(c);
      else await pc.addIceCandidate(c).catch(() => {});
      return;
    }
    case 'bye':
      setState('bye');
      if (pc) pc.close();
      return;
  }
}

async function startCall() {
  if (pc) pc.close();
  pending = [];
  D.sas = null;
  D.connected = false;
  if (!local) local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const p = new RTCPeerConnection({ iceServers });
  pc = p;
  for (const t of local.getTracks()) p.addTrack(t, local);
  p.onicecandidate = (e) => {
    if (p !== pc) return;
    if (e.candidate && e.candidate.candidate) {
      sealed({ kind: 'candidate', candidate: e.candidate.candidate, sdpMid: e.candidate.sdpMid, sdpMLineIndex: e.candidate.sdpMLineIndex });
    } else if (!e.candidate) sealed({ kind: 'end_of_candidates' });
  };
  p.ontrack = (e) => {
    $('d-remote').srcObject = e.streams[0] || new MediaStream([e.track]);
  };
  p.onconnectionstatechange = () => {
    if (p !== pc) return;
    if (p.connectionState === 'connected' && !D.connected) {
      D.connected = true;
      setState('in_call');
      plain({ type: 'connected' });
    }
  };
  const offer = await p.createOffer();
  await p.setLocalDescription(offer);
  await sealed({ kind: 'offer', sdp: p.localDescription.sdp });
}

D.admit = () => plain({ type: 'admit' });
D.bye = () => sealed({ kind: 'bye', reason: 'hangup' });
D.end = () => plain({ type: 'end' });
D.chat = (text) => sealed({ kind: 'chat', text });
D.iceRestart = async () => {
  // Same peer connection, new ICE credentials: a renegotiation offer.
  const offer = await pc.createOffer({ iceRestart: true });
  await pc.setLocalDescription(offer);
  await sealed({ kind: 'offer', sdp: pc.localDescription.sdp });
  return true;
};
D.reconnect = () => {
  D.sas = null;
  D.connected = false;
  ws.onclose = null;
  ws.close();
  connect();
};
$('d-admit').addEventListener('click', D.admit);
$('d-bye').addEventListener('click', D.bye);
$('d-end').addEventListener('click', D.end);
$('d-reconnect').addEventListener('click', D.reconnect);
connect();
