//! Call set-up time: from the doctor's admit to the first video frame decoded
//! at the doctor, two native peers on loopback.
//!
//! Side by side in the same run:
//! - **through the node**: real `telenode serve` routes, sealed signalling,
//!   the hub and the room state machine;
//! - **reference**: the same two peers exchanging SDP and candidates directly
//!   over in-process channels (no node, no sealing) — the floor set by ICE,
//!   DTLS and the codecs.
//!
//! Run: `cargo bench --bench call_setup` (prints the figures; target < 1 s).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use telenode::client::{
    AgentEvent, ApiClient, CallAgent, CallOptions, Seat, Trust, parse_link, ws_url,
};
use telenode::config::Config;
use telenode::peer::{AudioSource, Peer, PeerEvent, PeerOptions, VideoSource};
use telenode::store::{SqliteStore, Store};

/// Runs per path under `cargo bench`; `cargo test` runs the binary once as a
/// smoke test (one run each) so the measurement code stays working.
const RUNS: usize = 5;

fn video() -> VideoSource {
    VideoSource::Synthetic {
        width: 320,
        height: 240,
        fps: 30,
    }
}

fn loopback() -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

async fn through_node(base: &str, api: &ApiClient) -> anyhow::Result<Duration> {
    let link = api.new_consultation(None).await?;
    let (_, token, key) = parse_link(&link.url)?;
    let opts = |ws_url: String, seat: Seat, link_key, auto_admit| CallOptions {
        ws_url,
        seat,
        link_key,
        auto_admit,
        call_duration: None,
        setup_timeout: Duration::from_secs(20),
        bind_ip: loopback(),
        video: video(),
        audio: AudioSource::Tone { hz: 440.0 },
        force_relay: false,
        media_tap: None,
        trust: Trust::default(),
    };
    let (doctor, mut d_events) = CallAgent::start(opts(
        api.ws_url(),
        Seat::Doctor {
            consultation: link.consultation.id.clone(),
            session: api.session_handle(),
        },
        link.link_key,
        true,
    ))
    .await?;
    let (patient, _p_events) = CallAgent::start(opts(
        ws_url(base),
        Seat::Patient { token, name: None },
        key,
        false,
    ))
    .await?;
    let mut admitted = None;
    let elapsed = loop {
        match tokio::time::timeout(Duration::from_secs(20), d_events.recv()).await? {
            Some(AgentEvent::Admitted) => admitted = Some(Instant::now()),
            Some(AgentEvent::FirstVideoFrame { .. }) => {
                break admitted.map(|t| t.elapsed()).unwrap_or_default();
            }
            Some(AgentEvent::Ended(c)) => anyhow::bail!("call ended: {c:?}"),
            Some(_) => {}
            None => anyhow::bail!("doctor agent gone"),
        }
    };
    doctor.hang_up();
    doctor.join().await;
    patient.join().await;
    Ok(elapsed)
}

/// The same peers with SDP and candidates handed over directly.
async fn direct() -> anyhow::Result<Duration> {
    let opts = || PeerOptions {
        ice_servers: Vec::new(),
        bind_ip: loopback(),
        video: video(),
        audio: AudioSource::Tone { hz: 440.0 },
        force_relay: false,
        tap: None,
    };
    let start = Instant::now();
    let (a, mut a_ev) = Peer::start(opts()).await?;
    let (b, mut b_ev) = Peer::start(opts()).await?;
    let offer = a.create_offer(false).await?;
    let answer = b.apply_offer(&offer).await?;
    a.apply_answer(&answer).await?;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let elapsed = loop {
        tokio::select! {
            ev = a_ev.recv() => match ev {
                Some(PeerEvent::LocalCandidate(c)) => b.add_remote_candidate(c).await?,
                Some(PeerEvent::FirstVideoFrame { .. }) => break start.elapsed(),
                Some(PeerEvent::Failed { reason }) => anyhow::bail!("{reason}"),
                Some(_) => {}
                None => anyhow::bail!("peer gone"),
            },
            ev = b_ev.recv() => if let Some(PeerEvent::LocalCandidate(c)) = ev {
                a.add_remote_candidate(c).await?;
            },
            () = tokio::time::sleep(Duration::from_secs(20)) => anyhow::bail!("timed out"),
        }
    };
    a.close().await;
    b.close().await;
    Ok(elapsed)
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<32} median {:>7.1} ms   min {:>7.1} ms   max {:>7.1} ms   (n={})",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1]),
        v.len()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    // `cargo bench` passes `--bench`; anything else is a smoke run.
    let runs = if std::env::args().any(|a| a == "--bench") {
        RUNS
    } else {
        1
    };
    let dir = tempfile::tempdir()?;
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        admin_listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let store = Arc::new(SqliteStore::open(&config.data_dir, &config.key_file())?);
    let hash = telenode::auth::new_password_hash("bench password 123")?;
    let id = store.add_doctor("bench", "Dr. Bench", &hash, 0)?;
    let secret = telenode::auth::new_totp_secret();
    let factor = telenode::store::SecondFactor {
        totp_secret: secret.to_vec(),
        totp_last_step: 0,
        recovery_hashes: Vec::new(),
    };
    store.set_credentials(id, None, &factor, 0)?;
    let running = telenode::server::start(config, store as Arc<dyn Store>).await?;
    let base = format!("http://{}", running.addr);
    let api = ApiClient::login_with_totp_secret(
        &Trust::default(),
        &base,
        "bench",
        "bench password 123",
        &telenode::totp::base32_encode(&secret),
    )
    .await?;

    let mut node = Vec::new();
    let mut reference = Vec::new();
    for _ in 0..runs {
        node.push(through_node(&base, &api).await?);
        reference.push(direct().await?);
    }
    println!(
        "call set-up, admit -> first decoded video frame at the doctor (loopback, 320x240@30)"
    );
    summary("through the node (sealed)", node.clone());
    summary("reference: direct signalling", reference);
    let mut sorted = node;
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    println!(
        "target < 1000 ms: {}",
        if median < Duration::from_secs(1) {
            "met"
        } else {
            "MISSED"
        }
    );
    running.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
