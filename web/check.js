// Pre-call check: camera and microphone access, a microphone level meter,
// a speaker test tone and a connectivity check. No UI text here: functions
// return machine states that app.js turns into words.

const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
// Modest video: old phones and hospital Wi-Fi.
const VIDEO = {
  facingMode: 'user',
  width: { ideal: 640 },
  height: { ideal: 480 },
  frameRate: { ideal: 24, max: 30 },
};

/** Maps a getUserMedia error to ok|denied|missing|busy|error. */
function classify(err) {
  const name = (err && err.name) || '';
  if (name === 'NotAllowedError' || name === 'PermissionDeniedError' || name === 'SecurityError') return 'denied';
  if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError') return 'missing';
  if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') return 'busy';
  return 'error';
}

/**
 * Asks for camera and microphone. Resolves to
 * {stream, camera, mic} where camera/mic are ok|denied|missing|busy|error|unsupported
 * and stream holds whatever tracks we got (possibly none). Never rejects.
 */
export async function acquireMedia() {
  const md = navigator.mediaDevices;
  if (!md || typeof md.getUserMedia !== 'function') {
    // Old browser, or not a secure context.
    return { stream: new MediaStream(), camera: 'unsupported', mic: 'unsupported' };
  }
  try {
    const stream = await md.getUserMedia({ audio: AUDIO, video: VIDEO });
    return {
      stream,
      camera: stream.getVideoTracks().length ? 'ok' : 'missing',
      mic: stream.getAudioTracks().length ? 'ok' : 'missing',
    };
  } catch (err) {
    const kind = classify(err);
    // A refusal covers both devices: asking again one by one would only
    // nag (or silently fail again).
    if (kind === 'denied') return { stream: new MediaStream(), camera: 'denied', mic: 'denied' };
  }
  // One device is missing or busy: ask for each alone, one prompt at a time.
  const stream = new MediaStream();
  let mic = 'ok';
  let camera = 'ok';
  try {
    const a = await md.getUserMedia({ audio: AUDIO });
    for (const tr of a.getAudioTracks()) stream.addTrack(tr);
  } catch (err) {
    mic = classify(err);
  }
  try {
    const v = await md.getUserMedia({ video: VIDEO });
    for (const tr of v.getVideoTracks()) stream.addTrack(tr);
  } catch (err) {
    camera = classify(err);
  }
  return { stream, camera, mic };
}

export function stopStream(stream) {
  if (!stream) return;
  for (const tr of stream.getTracks()) tr.stop();
}

let audioCtx = null;

/** One shared AudioContext (webkit-prefixed on old Safari), or null. */
export function audioContext() {
  if (audioCtx) return audioCtx;
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return null;
  try {
    audioCtx = new Ctx();
  } catch (_e) {
    return null;
  }
  return audioCtx;
}

/** Browsers start audio suspended until a user gesture; call from one. */
export function resumeAudio() {
  const ctx = audioContext();
  if (ctx && ctx.state === 'suspended') ctx.resume().catch(() => {});
}

/**
 * Draws the microphone level into fillEl (its style.width, 0-100 %) until
 * stop() is called. onHeard() fires once, when the level first clearly
 * rises above silence.
 */
export function startMeter(stream, fillEl, onHeard) {
  const ctx = audioContext();
  if (!ctx || !stream.getAudioTracks().length) return { stop() {} };
  resumeAudio();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser); // not to the destination: no echo of the patient's own voice
  const buf = new Uint8Array(analyser.fftSize);
  let raf = 0;
  let heard = false;
  let smooth = 0;
  const tick = () => {
    analyser.getByteTimeDomainData(buf);
    let sum = 0;
    for (let i = 0; i < buf.length; i++) {
      const x = (buf[i] - 128) / 128;
      sum += x * x;
    }
    const rms = Math.sqrt(sum / buf.length);
    // Speech RMS is roughly 0.02-0.3; stretch it so talking fills the bar.
    const level = Math.min(1, rms * 4);
    smooth = Math.max(level, smooth * 0.85);
    fillEl.style.width = Math.round(smooth * 100) + '%';
    if (!heard && rms > 0.02) {
      heard = true;
      onHeard();
    }
    raf = requestAnimationFrame(tick);
  };
  raf = requestAnimationFrame(tick);
  return {
    stop() {
      cancelAnimationFrame(raf);
      try {
        source.disconnect();
      } catch (_e) {
        /* already disconnected */
      }
      fillEl.style.width = '0%';
    },
  };
}

/** Plays a soft 440 Hz tone for about one second; resolves when it ends. */
export function playTestTone() {
  const ctx = audioContext();
  if (!ctx) return Promise.reject(new Error('no WebAudio'));
  resumeAudio();
  return new Promise((resolve) => {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    const t0 = ctx.currentTime + 0.05;
    osc.type = 'sine';
    osc.frequency.value = 440;
    // Short fades so the tone doesn't click.
    gain.gain.setValueAtTime(0, t0);
    gain.gain.linearRampToValueAtTime(0.25, t0 + 0.05);
    gain.gain.setValueAtTime(0.25, t0 + 0.95);
    gain.gain.linearRampToValueAtTime(0, t0 + 1.0);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.onended = () => {
      osc.disconnect();
      gain.disconnect();
      resolve();
    };
    osc.start(t0);
    osc.stop(t0 + 1.02);
  });
}

/**
 * Connectivity: WebRTC available and GET /healthz answers. Resolves to
 * ok | fail | no_webrtc. Same origin only, nothing but the path is sent.
 */
export async function checkNetwork(timeoutMs = 8000) {
  if (typeof window.RTCPeerConnection !== 'function' || typeof window.WebSocket !== 'function') {
    return 'no_webrtc';
  }
  const ctl = typeof AbortController === 'function' ? new AbortController() : null;
  const timer = setTimeout(() => ctl && ctl.abort(), timeoutMs);
  try {
    const res = await fetch('/healthz', {
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal: ctl ? ctl.signal : undefined,
    });
    return res.ok ? 'ok' : 'fail';
  } catch (_e) {
    return 'fail';
  } finally {
    clearTimeout(timer);
  }
}
