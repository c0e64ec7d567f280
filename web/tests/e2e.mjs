// End-to-end check of the patient page in headless Chromium against the
// mock node of devserver.mjs and the fake doctor of doctor.html. No
// dependencies: Chromium is driven over the DevTools protocol on a pipe.
//
//   node web/tests/e2e.mjs            # CHROMIUM=/path/to/chromium to override
//   SHOTS=/tmp/shots node web/tests/e2e.mjs   # also save phone-sized screenshots
//
// Ends with "N passed, N failed"; exits 1 on failure, 0 with a note when no
// Chromium is installed. The real end-to-end tests (Rust node, native doctor)
// live in the repository's tests/; this one checks the page on its own.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './devserver.mjs';

const BIN = process.env.CHROMIUM || ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find(existsSync);
const SHOTS = process.env.SHOTS || '';
if (!BIN) {
  console.log('e2e: no Chromium found, skipped');
  console.log('0 passed, 0 failed');
  process.exit(0);
}

// --------------------------------------------------------------- CDP on a pipe

class Browser {
  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'telenode-e2e-'));
    this.proc = spawn(
      BIN,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--remote-debugging-pipe',
        `--user-data-dir=${this.dir}`,
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
        '--allow-loopback-in-peer-connection',
        '--autoplay-policy=no-user-gesture-required',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-quic',
        'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
    );
    this.id = 0;
    this.waiting = new Map();
    this.listeners = new Set();
    let buf = '';
    this.proc.stdio[4].on('data', (chunk) => {
      buf += chunk.toString('utf8');
      let i;
      while ((i = buf.indexOf('\0')) >= 0) {
        const msg = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (msg.id && this.waiting.has(msg.id)) {
          const { resolve, reject } = this.waiting.get(msg.id);
          this.waiting.delete(msg.id);
          if (msg.error) reject(new Error(msg.error.message));
          else resolve(msg.result);
        } else if (msg.method) {
          for (const l of this.listeners) l(msg);
        }
      }
    });
  }

  send(method, params = {}, sessionId) {
    const id = ++this.id;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    this.proc.stdio[3].write(JSON.stringify(msg) + '\0');
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  async newPage(url) {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this, sessionId, targetId);
    openPages.push(page);
    await page.init();
    if (url) await page.goto(url);
    return page;
  }

  async close() {
    const exited = new Promise((r) => this.proc.once('exit', r));
    // Ask politely (children shut down with it), then insist.
    this.send('Browser.close').catch(() => {});
    const timer = setTimeout(() => this.proc.kill(), 5000);
    await exited;
    clearTimeout(timer);
    try {
      rmSync(this.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    } catch (_e) {
      /* a straggling helper process still writing: leave the temp dir */
    }
  }
}

class Page {
  constructor(browser, sessionId, targetId) {
    this.b = browser;
    this.s = sessionId;
    this.targetId = targetId;
    this.console = []; // console messages and exceptions
    this.requests = []; // every URL requested
    this.violations = []; // CSP and other browser log entries
    browser.listeners.add((m) => {
      if (m.sessionId !== sessionId) return;
      if (m.method === 'Runtime.consoleAPICalled') {
        this.console.push(m.params.args.map((a) => a.value !== undefined ? String(a.value) : a.description || '').join(' '));
      } else if (m.method === 'Runtime.exceptionThrown') {
        const d = m.params.exceptionDetails;
        this.console.push('exception: ' + ((d.exception && d.exception.description) || d.text));
      } else if (m.method === 'Network.requestWillBeSent') {
        this.requests.push(m.params.request.url);
      } else if (m.method === 'Log.entryAdded') {
        this.violations.push(m.params.entry.source + ': ' + m.params.entry.text);
      }
    });
  }

  async init() {
    await this.send('Page.enable');
    await this.send('Runtime.enable');
    await this.send('Network.enable');
    await this.send('Log.enable');
    await this.send('Emulation.setDeviceMetricsOverride', { width: 412, height: 900, deviceScaleFactor: 1, mobile: true });
  }

  send(method, params) {
    return this.b.send(method, params, this.s);
  }

  async goto(url) {
    // A marker that disappears with the old document (a fragment-only change
    // would not reload: use reload() for that).
    await this.eval('window.__old = true').catch(() => {});
    await this.send('Page.navigate', { url });
    await this.waitFor("!window.__old && document.readyState === 'complete'", 10000, 'navigation');
  }

  async reload() {
    await this.eval('window.__old = true');
    await this.send('Page.reload', {});
    await this.waitFor("!window.__old && document.readyState === 'complete'", 10000, 'reload');
  }

  async eval(expression) {
    const r = await this.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) throw new Error('eval: ' + (r.exceptionDetails.exception ? r.exceptionDetails.exception.description : r.exceptionDetails.text));
    return r.result.value;
  }

  async waitFor(expression, timeoutMs = 10000, what) {
    const end = Date.now() + timeoutMs;
    let last;
    for (;;) {
      try {
        last = await this.eval(expression);
        if (last) return last;
      } catch (e) {
        last = e.message;
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${what || expression} (last: ${JSON.stringify(last)})`);
      await sleep(100);
    }
  }

  click(id) {
    return this.eval(`document.getElementById(${JSON.stringify(id)}).click(), true`);
  }

  visibleScreen() {
    return this.eval(`[...document.querySelectorAll('.screen')].filter(s => !s.hidden).map(s => s.id).join(',')`);
  }

  text(id) {
    return this.eval(`document.getElementById(${JSON.stringify(id)}).textContent`);
  }

  async shot(name) {
    if (!SHOTS) return;
    mkdirSync(SHOTS, { recursive: true });
    await this.send('Page.bringToFront'); // a background tab paints no frames
    const { cssContentSize: c } = await this.send('Page.getLayoutMetrics');
    const { data } = await this.send('Page.captureScreenshot', {
      format: 'png',
      captureBeyondViewport: true,
      clip: { x: 0, y: 0, width: c.width, height: c.height, scale: 1 },
    });
    writeFileSync(path.join(SHOTS, name + '.png'), Buffer.from(data, 'base64'));
  }

  close() {
    return this.b.send('Target.closeTarget', { targetId: this.targetId });
  }
}

const openPages = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --------------------------------------------------------------------- tests

let passed = 0;
let failed = 0;
async function test(name, fn) {
  const t0 = Date.now();
  openPages.length = 0;
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
    if (process.env.DEBUG) {
      for (const pg of openPages) {
        try {
          console.log('  page', await pg.eval(`JSON.stringify({url: location.pathname, screens: [...document.querySelectorAll('.screen')].filter(s => !s.hidden).map(s => s.id), conn: (document.getElementById('conn-state')||{}).textContent, notice: (document.getElementById('call-notice')||{}).textContent, doctor: window.doctor && {state: window.doctor.state, errors: window.doctor.errors, kinds: window.doctor.kinds}})`), pg.console.join(' | '));
        } catch (_e) { /* closed */ }
      }
      console.log('  node', JSON.stringify(await nodeState()));
    }
  } finally {
    for (const pg of openPages) await pg.close().catch(() => {});
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function assertEq(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

/** Nothing leaked to the console, no CSP violation, no request off the origin. */
function assertClean(page, srv) {
  const secrets = [srv.node.token, srv.node.linkKey];
  for (const line of page.console) {
    for (const s of secrets) assert(!line.includes(s), 'a secret reached the console');
    assert(!/a=fingerprint|candidate:/.test(line), 'SDP or a candidate reached the console');
  }
  assert(page.console.length === 0, 'console output: ' + page.console.join(' | '));
  const bad = page.violations.filter((v) => /Content Security Policy|Refused/i.test(v));
  assert(bad.length === 0, 'CSP violations: ' + bad.join(' | '));
  const foreign = page.requests.filter((u) => !u.startsWith(srv.base + '/') && !u.startsWith('data:') && u !== 'about:blank');
  assert(foreign.length === 0, 'requests off the origin: ' + foreign.join(' '));
}

/** The patient page shows a media connection (direct or relayed). */
function waitConnected(p, what) {
  return p.waitFor(`['direct','relay'].includes(document.getElementById('conn-state').dataset.state)`, 15000, what);
}

async function passChecksAndJoin(p, name) {
  await p.waitFor(`document.getElementById('check-camera-status').dataset.state === 'ok'`, 10000, 'camera ok');
  await p.waitFor(`document.getElementById('check-mic-status').dataset.state === 'ok'`, 10000, 'mic ok');
  await p.waitFor(`document.getElementById('check-network-status').dataset.state === 'ok'`, 10000, 'network ok');
  await p.eval(`(() => { const c = document.getElementById('consent'); if (!c.checked) c.click(); return true; })()`);
  if (name !== undefined) await p.eval(`document.getElementById('display-name').value = ${JSON.stringify(name)}, true`);
  await p.click('btn-join');
}

const browser = new Browser();
const srv = await startServer(0);
const reset = () => fetch(srv.base + '/_test/reset');
const nodeState = async () => (await fetch(srv.base + '/_test/state')).json();

try {
  await test('incomplete link: error screen with code incomplete_link', async () => {
    const p = await browser.newPage(`${srv.base}/c/${srv.node.token}`);
    await p.waitFor(`!document.getElementById('screen-error').hidden`, 5000, 'error screen');
    assertEq(await p.text('error-code'), 'incomplete_link', 'error code');
    assertEq(await p.visibleScreen(), 'screen-error', 'only the error screen');
    await p.shot('incomplete');
    assertClean(p, srv);
    await p.close();
  });

  await test('languages: German and French from navigator.languages, English otherwise', async () => {
    const p = await browser.newPage();
    let first = true;
    for (const [accept, lang, title] of [
      ['de-DE,de', 'de', 'Bevor Sie beitreten'],
      ['fr-CH,fr', 'fr', 'Avant de commencer'],
      ['it-IT,it', 'en', 'Before you join'],
      ['it,fr,de', 'fr', 'Avant de commencer'],
    ]) {
      await p.send('Emulation.setUserAgentOverride', { userAgent: 'Mozilla/5.0 test', acceptLanguage: accept });
      if (first) await p.goto(srv.patientUrl);
      else await p.reload();
      first = false;
      await p.waitFor(`!document.getElementById('screen-check').hidden`, 5000, 'check screen');
      assertEq(await p.eval('document.documentElement.lang'), lang, 'html lang for ' + accept);
      assertEq(await p.text('check-title'), title, 'title for ' + accept);
    }
    await p.close();
  });

  await test('pre-call check, consent required, waiting room, leave', async () => {
    await reset();
    const p = await browser.newPage(srv.patientUrl);
    await p.waitFor(`document.getElementById('check-camera-status').dataset.state === 'ok'`, 10000, 'camera ok');
    await p.waitFor(`document.getElementById('check-network-status').dataset.state === 'ok'`, 10000, 'network ok');
    await p.waitFor(`document.getElementById('check-mic-status').textContent.length > 0`);
    await p.waitFor(`document.getElementById('preview-video').videoWidth > 0`, 10000, 'camera preview');
    await p.click('btn-speaker-test');
    await p.waitFor(`document.getElementById('check-speaker-status').dataset.state === 'done'`, 5000, 'tone played');
    await sleep(300);
    await p.shot('check');
    // Every control has an accessible name.
    const unnamed = await p.eval(`[...document.querySelectorAll('button, input, video')].filter(e => {
      if (e.id === 'consent' || e.id === 'display-name') return !document.querySelector('label[for=' + e.id + ']').textContent.trim();
      return !(e.getAttribute('aria-label') || e.textContent.trim());
    }).map(e => e.id).join(',')`);
    assertEq(unnamed, '', 'controls without accessible name');
    await p.click('btn-join');
    assertEq(await p.visibleScreen(), 'screen-check', 'no consent: still on the check screen');
    assert(!(await p.eval(`document.getElementById('consent-error').hidden`)), 'consent error shown');
    await p.eval(`document.getElementById('consent').click(), true`);
    await p.click('btn-join');
    await p.waitFor(`!document.getElementById('screen-waiting').hidden`, 5000, 'waiting screen');
    const st = await (async () => {
      for (let i = 0; i < 50; i++) {
        const s = await nodeState();
        if (s.state === 'waiting') return s;
        await sleep(100);
      }
      return nodeState();
    })();
    assertEq(st.state, 'waiting', 'node state');
    await p.shot('waiting');
    await p.click('btn-leave');
    await p.waitFor(`!document.getElementById('screen-ended').hidden`, 5000, 'ended screen');
    await sleep(200);
    assertEq((await nodeState()).state, 'created', 'node state after leave');
    assertClean(p, srv);
    await p.close();
  });

  await test('full call: admitted, connected, same SAS, name delivered, controls, hang up', async () => {
    await reset();
    const p = await browser.newPage(srv.patientUrl);
    await passChecksAndJoin(p, 'Erika M.');
    await p.waitFor(`!document.getElementById('screen-waiting').hidden`, 5000, 'waiting');
    const d = await browser.newPage(srv.doctorUrl);
    await p.waitFor(`!document.getElementById('screen-call').hidden`, 10000, 'call screen');
    await waitConnected(p, 'connected');
    assertEq(await p.eval(`document.getElementById('conn-state').dataset.state`), 'direct', 'path on loopback');
    const psas = await p.waitFor(`document.getElementById('sas').dataset.sas`, 5000, 'patient SAS');
    const dsas = await d.waitFor(`window.doctor.sas`, 5000, 'doctor SAS');
    assertEq(psas, dsas, 'SAS patient vs doctor');
    assertEq(await p.text('sas'), psas.slice(0, 3) + ' ' + psas.slice(3), 'SAS display');
    assertEq(await d.eval('window.doctor.name'), 'Erika M.', 'name at the doctor');
    await p.waitFor(`document.getElementById('remote-video').videoWidth > 0`, 10000, 'remote video decoding');
    await d.waitFor(`document.getElementById('d-remote').videoWidth > 0`, 10000, 'patient video at the doctor');
    for (let i = 0; i < 50 && (await nodeState()).state !== 'in_call'; i++) await sleep(100);
    assertEq((await nodeState()).state, 'in_call', 'node state (both sent connected)');
    await sleep(500);
    await p.shot('call');

    await p.click('btn-mute');
    assertEq(await p.text('btn-mute'), 'Unmute microphone', 'mute label');
    await p.click('btn-camera');
    assertEq(await p.text('btn-camera'), 'Turn camera on', 'camera label');
    await p.click('btn-mute');
    await p.click('btn-camera');
    assertEq(await p.text('btn-mute'), 'Mute microphone', 'unmute label');

    await d.eval('window.doctor.chat("Hello from the doctor")');
    await p.waitFor(`document.getElementById('call-notice').textContent.includes('Hello from the doctor')`, 5000, 'chat shown');

    // Doctor's connection drops and comes back: new epoch, new peer connection, same flow.
    await d.eval('window.doctor.reconnect(), true');
    await d.waitFor(`window.doctor.connected && window.doctor.sas`, 15000, 'doctor reconnected');
    await p.waitFor(`document.getElementById('sas').dataset.sas === ${JSON.stringify(await d.eval('window.doctor.sas'))}`, 10000, 'SAS after doctor reconnect');
    await waitConnected(p, 'connected again');

    // Patient reloads: resume secret keeps the admission, no new admit needed.
    await p.reload();
    await passChecksAndJoin(p, 'Erika M.');
    await p.waitFor(`!document.getElementById('screen-call').hidden`, 10000, 'call screen after reload');
    await waitConnected(p, 'connected after reload');
    await d.waitFor(`window.doctor.sas`, 5000);
    await p.waitFor(`document.getElementById('sas').dataset.sas === ${JSON.stringify(await d.eval('window.doctor.sas'))}`, 10000, 'SAS after reload');
    assertEq((await d.eval('window.doctor.errors')).length, 0, 'doctor saw no errors');

    await p.click('btn-hangup');
    await p.waitFor(`!document.getElementById('screen-ended').hidden`, 5000, 'ended screen');
    await d.waitFor(`window.doctor.kinds.includes('bye')`, 5000, 'doctor got bye');
    await p.shot('ended');
    assertEq(await p.text('ended-detail'), 'You hung up.', 'ended text');
    assertEq((await d.eval('window.doctor.errors')).join(','), '', 'doctor errors');
    assertClean(p, srv);
    await p.close();
    await d.close();
  });

  await test('camera and microphone denied: told so, still joins receive-only; ICE restart keeps the call', async () => {
    await reset();
    // The fake-UI flag grants every prompt: refuse in the page instead, as a
    // browser does when the patient taps "Block".
    const p = await browser.newPage();
    await p.send('Page.addScriptToEvaluateOnNewDocument', {
      source: `navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError'));`,
    });
    await p.goto(srv.patientUrl);
    {
      await p.waitFor(`document.getElementById('check-camera-status').dataset.state === 'denied'`, 10000, 'camera denied');
      assertEq(await p.eval(`document.getElementById('check-mic-status').dataset.state`), 'denied', 'mic denied');
      assert(!(await p.eval(`document.getElementById('btn-retry-media').hidden`)), 'retry button shown');
      await p.shot('denied');
      await p.eval(`document.getElementById('consent').click(), true`);
      await p.click('btn-join');
      const d = await browser.newPage(srv.doctorUrl);
      await waitConnected(p, 'connected');
      await p.waitFor(`document.getElementById('remote-video').videoWidth > 0`, 10000, 'doctor video at the patient');
      assert(await p.eval(`document.getElementById('btn-mute').disabled && document.getElementById('btn-camera').disabled`), 'media buttons disabled');
      assert(await p.eval(`document.getElementById('local-video').hidden`), 'no self view');
      const sas1 = await d.waitFor('window.doctor.sas', 5000, 'doctor SAS');
      await p.waitFor(`document.getElementById('sas').dataset.sas === ${JSON.stringify(sas1)}`, 5000, 'same SAS');
      const answers = await d.eval(`window.doctor.kinds.filter(k => k === 'answer').length`);
      await d.eval('window.doctor.iceRestart()');
      await d.waitFor(`window.doctor.kinds.filter(k => k === 'answer').length === ${answers + 1}`, 5000, 'answer to the restart');
      await sleep(1000);
      assertEq(await p.eval(`document.getElementById('sas').dataset.sas`), sas1, 'SAS unchanged after ICE restart');
      await waitConnected(p, 'still connected');
      assertEq((await d.eval('window.doctor.errors')).join(','), '', 'doctor errors');
      assertClean(p, srv);
    }
  });

  await test('network loss: the page reconnects with its resume secret and the call comes back', async () => {
    await reset();
    const p = await browser.newPage(srv.patientUrl);
    await passChecksAndJoin(p);
    const d = await browser.newPage(srv.doctorUrl);
    await waitConnected(p, 'connected');
    const sas1 = await d.waitFor('window.doctor.sas', 5000);
    await d.eval('window.doctor.sas = null, true');
    assertEq(await (await fetch(srv.base + '/_test/drop?role=patient')).text(), 'dropped', 'drop');
    await p.waitFor(`document.getElementById('call-notice').textContent !== ''`, 5000, 'reconnecting notice');
    // Back within the first back-off step; the doctor restarts the call on peer_joined.
    const sas2 = await d.waitFor('window.doctor.sas', 10000, 'doctor SAS after reconnect');
    await p.waitFor(`document.getElementById('sas').dataset.sas === ${JSON.stringify(sas2)}`, 10000, 'same SAS after reconnect');
    assert(sas2 !== sas1, 'a new call (new doctor certificate)');
    await waitConnected(p, 'connected again');
    await p.waitFor(`document.getElementById('call-notice').hidden`, 5000, 'notice cleared');
    const st = await nodeState();
    assertEq(st.log.filter((l) => l === 'doctor:admit').length, 1, 'admitted once: the resume kept the admission');
    assertEq((await d.eval('window.doctor.errors')).join(','), '', 'doctor errors');
    assertClean(p, srv);
  });

  await test('doctor ends the consultation: end screen; the link is dead afterwards', async () => {
    await reset();
    const p = await browser.newPage(srv.patientUrl);
    await passChecksAndJoin(p);
    const d = await browser.newPage(srv.doctorUrl);
    await waitConnected(p, 'connected');
    assertEq(await d.eval('window.doctor.name'), null, 'no name given');
    await d.eval('window.doctor.end(), true');
    await p.waitFor(`!document.getElementById('screen-ended').hidden`, 5000, 'ended screen');
    assertEq(await p.text('ended-title'), 'The consultation has ended', 'title');
    await p.reload();
    await passChecksAndJoin(p);
    await p.waitFor(`!document.getElementById('screen-error').hidden`, 5000, 'error screen');
    assertEq(await p.text('error-code'), 'bad_token', 'code');
    await p.shot('bad_token');
    assertClean(p, srv);
    await p.close();
    await d.close();
  });

  await test('a sealed envelope altered by the node: fail closed with integrity_error', async () => {
    await reset();
    const p = await browser.newPage(srv.patientUrl);
    await passChecksAndJoin(p);
    await p.waitFor(`!document.getElementById('screen-waiting').hidden`);
    await fetch(srv.base + '/_test/tamper?n=3'); // the offer and one candidate pass, the next is altered
    const d = await browser.newPage(srv.doctorUrl);
    await p.waitFor(`!document.getElementById('screen-error').hidden`, 10000, 'error screen');
    assertEq(await p.text('error-code'), 'integrity_error', 'code');
    assertEq(await p.text('error-message'), 'The connection could not be verified securely. The call was stopped.', 'message');
    assert(!(await p.eval(`!!document.getElementById('remote-video').srcObject`)), 'media stopped');
    await sleep(300);
    assertEq((await nodeState()).patient, false, 'socket closed');
    await p.shot('integrity');
    assertClean(p, srv);
    await p.close();
    await d.close();
  });

  await test('second device while the seat is held: seat_taken', async () => {
    await reset();
    const p = await browser.newPage(srv.patientUrl);
    await passChecksAndJoin(p);
    await p.waitFor(`!document.getElementById('screen-waiting').hidden`);
    await sleep(300);
    const q = await browser.newPage(srv.patientUrl);
    await passChecksAndJoin(q);
    await q.waitFor(`!document.getElementById('screen-error').hidden`, 5000, 'error screen');
    assertEq(await q.text('error-code'), 'seat_taken', 'code');
    await p.close();
    await q.close();
  });

  await test('unknown token: bad_token after joining', async () => {
    await reset();
    const p = await browser.newPage(`${srv.base}/c/${'A'.repeat(43)}#${srv.node.linkKey}`);
    await passChecksAndJoin(p);
    await p.waitFor(`!document.getElementById('screen-error').hidden`, 5000, 'error screen');
    assertEq(await p.text('error-code'), 'bad_token', 'code');
    assertEq(await p.text('error-message'), 'This link is not valid or has expired. Please ask your practice for a new link.', 'message');
    await p.close();
  });
} finally {
  await browser.close();
  await srv.close();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
