//! Headless Chromium for the patient side, with fake camera and microphone.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::network::EventRequestWillBeSent;
use chromiumoxide::page::Page;
use futures_util::StreamExt;

/// Wraps `RTCPeerConnection` before the page's scripts run, so the test can
/// read `getStats()` without any hook in the page itself.
pub const PC_SPY: &str = r#"
(() => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Orig(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Orig);
})();
"#;

/// Reads the inbound media counters of the newest peer connection and the
/// selected pair: `pair` is the local candidate's type, `remote` the remote
/// one's, `relay_protocol` how a local relay candidate reaches its TURN
/// server (udp, tcp or tls).
pub const READ_STATS: &str = r#"
(async () => {
  const pc = window.__pcs && window.__pcs[window.__pcs.length - 1];
  if (!pc) return {video_frames_decoded: 0, audio_packets_received: 0, audio_energy: 0, state: 'none', pair: '', remote: '', relay_protocol: ''};
  const stats = await pc.getStats();
  let v = 0, a = 0, energy = 0, local = '', remote = '', relayProtocol = '';
  const byId = new Map();
  stats.forEach(s => byId.set(s.id, s));
  stats.forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') v += s.framesDecoded || 0;
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      a += s.packetsReceived || 0;
      energy += s.totalAudioEnergy || 0;
    }
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
      const l = byId.get(s.localCandidateId);
      const r = byId.get(s.remoteCandidateId);
      local = l ? l.candidateType : '';
      relayProtocol = (l && l.relayProtocol) || '';
      remote = r ? r.candidateType : '';
    }
  });
  return {video_frames_decoded: v, audio_packets_received: a, audio_energy: energy, state: pc.connectionState,
          pair: local, remote, relay_protocol: relayProtocol};
})()
"#;

/// A launched browser; dropping it kills Chromium.
pub struct Chromium {
    pub browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
    /// Every URL the pages requested.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Chromium {
    pub async fn launch() -> Chromium {
        Self::launch_with(&[]).await
    }

    /// Launches it with more command-line switches (without the dashes).
    pub async fn launch_with(extra: &[&str]) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let exe = [
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Chromium is installed (scripts/test-all installs it)");
        let config = BrowserConfig::builder()
            .chrome_executable(exe)
            .no_sandbox()
            .new_headless_mode()
            .user_data_dir(profile.path())
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(Duration::from_secs(30))
            .args([
                "disable-gpu",
                "disable-quic",
                "no-first-run",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
                "use-fake-device-for-media-stream",
                "use-fake-ui-for-media-stream",
                "allow-loopback-in-peer-connection",
                "autoplay-policy=no-user-gesture-required",
            ])
            .args(extra.iter().copied())
            .build()
            .unwrap();
        let (browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Chromium {
            browser,
            handler,
            _profile: profile,
            requests: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A blank page with the peer-connection spy and the request recorder.
    pub async fn page(&self) -> Page {
        let page = self.browser.new_page("about:blank").await.unwrap();
        page.evaluate_on_new_document(PC_SPY).await.unwrap();
        let mut sent = page
            .event_listener::<EventRequestWillBeSent>()
            .await
            .unwrap();
        let requests = self.requests.clone();
        tokio::spawn(async move {
            while let Some(ev) = sent.next().await {
                requests.lock().unwrap().push(ev.request.url.clone());
            }
        });
        page
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Evaluates an expression and returns its JSON value.
pub async fn eval(page: &Page, js: &str) -> serde_json::Value {
    page.evaluate(js)
        .await
        .unwrap_or_else(|e| panic!("evaluating {js}: {e}"))
        .into_value()
        .unwrap_or(serde_json::Value::Null)
}

/// Polls an expression until it is true.
pub async fn wait_true(page: &Page, js: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if page
            .evaluate(js)
            .await
            .ok()
            .and_then(|r| r.into_value::<bool>().ok())
            == Some(true)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Opens the patient link and goes through the page's own controls: waits
/// for the pre-call check, ticks the consent box, types `name`, joins.
pub async fn join_as_patient(page: &Page, url: &str, name: &str) {
    page.goto(url).await.expect("page opens");
    assert!(
        wait_true(
            page,
            // The controls are in the static page but hidden until app.js
            // shows the check; the camera preview appearing moves them, so
            // wait until the camera check has settled before clicking.
            "!document.getElementById('screen-check').hidden \
             && document.getElementById('check-camera-status').dataset.state !== 'checking' \
             && document.getElementById('consent').getClientRects().length > 0",
            Duration::from_secs(10)
        )
        .await,
        "the pre-call check settles and shows the consent box"
    );
    page.find_element("#consent")
        .await
        .expect("consent")
        .click()
        .await
        .expect("tick");
    page.find_element("#display-name")
        .await
        .expect("name field")
        .click()
        .await
        .expect("focus")
        .type_str(name)
        .await
        .expect("type");
    page.find_element("#btn-join")
        .await
        .expect("join")
        .click()
        .await
        .expect("click");
    assert!(
        wait_true(
            page,
            "document.getElementById('screen-check').hidden",
            Duration::from_secs(10)
        )
        .await,
        "the page left the pre-call check after joining (consent ticked: {})",
        eval(page, "document.getElementById('consent').checked").await
    );
}

/// The six digits of the short authentication string the page shows.
pub async fn page_sas(page: &Page) -> String {
    eval(page, "document.querySelector('#sas').textContent")
        .await
        .as_str()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// Hangs up through the page's own button.
pub async fn hang_up(page: &Page) {
    page.find_element("#btn-hangup")
        .await
        .expect("hang-up")
        .click()
        .await
        .expect("click");
}
