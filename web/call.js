// The WebRTC side of the call. The doctor always offers; this page answers.
// Signalling goes out through the `send` callback (app.js seals it); nothing
// here touches the WebSocket or logs SDP / candidates.

import { fingerprintFromSdp, sas } from './seal.js';

const ICE_URL = /^(stun|stuns|turn|turns):/i;
const STATS_INTERVAL_MS = 10000;

/** Keeps only well-formed {urls, username?, credential?} entries from `welcome`. */
export function sanitizeIceServers(list) {
  if (!Array.isArray(list)) return [];
  const out = [];
  for (const s of list) {
    if (!s || typeof s !== 'object') continue;
    const urls = (Array.isArray(s.urls) ? s.urls : [s.urls]).filter(
      (u) => typeof u === 'string' && ICE_URL.test(u),
    );
    if (!urls.length) continue;
    const entry = { urls };
    if (typeof s.username === 'string') entry.username = s.username;
    if (typeof s.credential === 'string') entry.credential = s.credential;
    out.push(entry);
  }
  return out;
}

/**
 * One call with the doctor. Events (all optional):
 *   onState(s)         s: connecting | direct | relay | reconnecting | failed
 *   onConnected(path)  once each time the transport becomes connected;
 *                      path: 'direct' | 'relay' | undefined
 *   onSas(code)        six digits, when both descriptions are set
 *   onRemoteStream(ms) the MediaStream to show, on a new remote track
 *   onNewPeer()        a new peer connection replaced the old one (SAS and video reset)
 */
export class Call {
  constructor({ iceServers, localStream, send, onState, onConnected, onSas, onRemoteStream, onNewPeer }) {
    this.iceServers = iceServers || [];
    this.localStream = localStream || new MediaStream();
    this.send = send;
    this.onState = onState || (() => {});
    this.onConnected = onConnected || (() => {});
    this.onSas = onSas || (() => {});
    this.onRemoteStream = onRemoteStream || (() => {});
    this.onNewPeer = onNewPeer || (() => {});
    this.pc = null;
    this.closed = false;
    // Remote candidates that came before the remote description; they belong
    // to the next offer, so they survive a fresh peer connection.
    this.pending = [];
  }

  _newPc() {
    this._closePc();
    let pc;
    try {
      pc = new RTCPeerConnection({ iceServers: this.iceServers });
    } catch (_e) {
      // An ICE server the browser refuses must not stop the call.
      pc = new RTCPeerConnection();
    }
    this.pc = pc;
    this.remoteFp = null; // doctor's DTLS fingerprint for this pc
    this.remoteStream = new MediaStream();
    this.wasConnected = false;
    this.isConnected = false;
    this.lastState = null;

    pc.onicecandidate = (e) => {
      if (pc !== this.pc) return;
      if (!e.candidate) {
        this.send({ kind: 'end_of_candidates' });
      } else if (e.candidate.candidate) {
        // (An empty candidate string is Chrome's per-generation end marker; the null follows.)
        this.send({
          kind: 'candidate',
          candidate: e.candidate.candidate,
          sdpMid: e.candidate.sdpMid,
          sdpMLineIndex: e.candidate.sdpMLineIndex,
        });
      }
    };
    pc.ontrack = (e) => {
      if (pc !== this.pc) return;
      // Our own stream: the doctor's native client may send tracks without msid streams.
      if (!this.remoteStream.getTracks().includes(e.track)) this.remoteStream.addTrack(e.track);
      this.onRemoteStream(this.remoteStream);
    };
    const changed = () => {
      if (pc === this.pc) this._stateChanged();
    };
    pc.onconnectionstatechange = changed;
    pc.oniceconnectionstatechange = changed; // browsers without connectionState
    this.onNewPeer();
    this._stateChanged();
    return pc;
  }

  _closePc() {
    clearInterval(this.statsTimer);
    this.statsTimer = 0;
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = pc.oniceconnectionstatechange = null;
      try {
        pc.close();
      } catch (_e) {
        /* already closed */
      }
    }
  }

  /** connectionState, or one derived from iceConnectionState. */
  _rawState() {
    const pc = this.pc;
    if (pc.connectionState) return pc.connectionState;
    switch (pc.iceConnectionState) {
      case 'checking':
        return 'connecting';
      case 'connected':
      case 'completed':
        return 'connected';
      default:
        return pc.iceConnectionState;
    }
  }

  _stateChanged() {
    const raw = this._rawState();
    if (raw === 'connected') {
      if (!this.isConnected) {
        this.isConnected = true;
        this.wasConnected = true;
        // Report the connection with its path kind once the stats tell it.
        this._refreshPath().then(() => this.onConnected(this.path));
        clearInterval(this.statsTimer);
        this.statsTimer = setInterval(() => this._refreshPath(), STATS_INTERVAL_MS);
      }
      return;
    }
    this.isConnected = false;
    clearInterval(this.statsTimer);
    this.statsTimer = 0;
    if (raw === 'closed') return;
    if (raw === 'failed') this._report('failed');
    else if (raw === 'disconnected' || this.wasConnected) this._report('reconnecting');
    else this._report('connecting');
  }

  _report(s) {
    if (s === this.lastState) return;
    this.lastState = s;
    this.onState(s);
  }

  /** Reads the selected candidate pair from getStats: relay or direct. */
  async _refreshPath() {
    const pc = this.pc;
    if (!pc) return;
    let relay = false;
    try {
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((r) => {
        if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId) || pair;
      });
      if (!pair) {
        // Firefox and old Safari: no transport stats, a flag on the pair instead.
        stats.forEach((r) => {
          if (!pair && r.type === 'candidate-pair' && r.state === 'succeeded' && (r.selected || r.nominated)) pair = r;
        });
      }
      if (pair) {
        const local = stats.get(pair.localCandidateId);
        const remote = stats.get(pair.remoteCandidateId);
        relay = (local && local.candidateType === 'relay') || (remote && remote.candidateType === 'relay');
      }
    } catch (_e) {
      /* no stats: report "direct" rather than nothing */
    }
    if (pc === this.pc && this.isConnected) {
      this.path = relay ? 'relay' : 'direct';
      this._report(this.path);
    }
  }

  /** Adds every local track not yet sent; after the offer this reuses its transceivers. */
  _attachLocalTracks() {
    const pc = this.pc;
    const sending = pc.getSenders().map((s) => s.track);
    for (const track of this.localStream.getTracks()) {
      if (!sending.includes(track)) pc.addTrack(track, this.localStream);
    }
  }

  /**
   * Applies an offer (first one, renegotiation or ICE restart) and sends the
   * answer. An offer with another DTLS fingerprint means the doctor's client
   * started a new peer connection: so do we.
   */
  async handleOffer(sdp) {
    if (this.closed) return;
    const fd = fingerprintFromSdp(sdp);
    if (!this.pc || this.pc.signalingState === 'closed' || (this.remoteFp && fd !== this.remoteFp)) {
      this._newPc();
    }
    try {
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
    } catch (err) {
      if (!this.remoteFp) throw err;
      // The existing pc refused the offer: start over with a fresh one.
      this._newPc();
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
    }
    const pc = this.pc;
    this.remoteFp = fd;
    this._attachLocalTracks();
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (pc !== this.pc) return;
    this.send({ kind: 'answer', sdp: pc.localDescription.sdp });

    const queued = this.pending;
    this.pending = [];
    for (const c of queued) await this._addCandidate(c);

    const fp = fingerprintFromSdp(pc.localDescription.sdp);
    if (fd && fp) {
      const code = await sas(fd, fp);
      if (pc === this.pc) this.onSas(code);
    }
  }

  /** A remote candidate ({candidate, sdpMid, sdpMLineIndex}) or null for end-of-candidates. */
  async addCandidate(c) {
    if (this.closed) return;
    if (!this.pc || !this.pc.remoteDescription) {
      this.pending.push(c);
      return;
    }
    await this._addCandidate(c);
  }

  async _addCandidate(c) {
    try {
      // {candidate: ''} is the portable spelling of end-of-candidates.
      await this.pc.addIceCandidate(c === null ? { candidate: '' } : c);
    } catch (_e) {
      /* a stale or unusable candidate must not end the call */
    }
  }

  close() {
    this.closed = true;
    this._closePc();
  }
}
