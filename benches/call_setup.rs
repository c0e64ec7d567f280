//! Call set-up time: from the doctor's admit to the first video frame decoded
//! at the doctor, two native peers on loopback; and the media round-trip
//! time once the call runs.
//!
//! Side by side in the same run:
//! - **through the node**: real `telenode serve` routes, sealed signalling,
//!   the hub and the room state machine, media on the direct (host) path;
//! - **through the node's relay**: the same, both peers with relay
//!   candidates only (`force_relay`), so every packet crosses the embedded
//!   TURN relay twice (into one allocation, out of the other);
//! - **reference**: the same two peers exchanging SDP and candidates directly
//!   over in-process channels (no node, no sealing) — the floor set by ICE,
//!   DTLS and the codecs.
//!
//! The round-trip time is what the doctor's peer measures (RTCP receiver
//! reports, else ICE consent checks), the median over the call's first
//! seconds.
//!
//! Run: `cargo bench --bench call_setup` (prints the figures; targets:
//! set-up < 1 s direct and < 2 s relayed, relayed RTT < 5 ms).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use telenode::client::{
    AgentEvent, ApiClient, CallAgent, CallOptions, Seat, Trust, parse_link, ws_url,
};
use telenode::peer::{AudioOutput, AudioSource, Peer, PeerEvent, PeerOptions, VideoSource};

mod support;
use support::BenchNode;

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

/// How long the call runs after the first frame, to read round-trip times.
const RTT_WINDOW: Duration = Duration::from_secs(4);

/// Set-up time, and the median round-trip time once connected.
async fn through_node(
    base: &str,
    api: &ApiClient,
    relay: bool,
) -> anyhow::Result<(Duration, Option<f64>)> {
    let t0 = Instant::now();
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
        audio_output: AudioOutput::None,
        force_relay: relay,
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
        let ev = tokio::time::timeout(Duration::from_secs(20), d_events.recv()).await?;
        if std::env::var_os("BENCH_TRACE").is_some() {
            eprintln!("{:?} {ev:?}", t0.elapsed());
        }
        match ev {
            Some(AgentEvent::Admitted) => admitted = Some(Instant::now()),
            Some(AgentEvent::FirstVideoFrame { .. }) => {
                break admitted.map(|t| t.elapsed()).unwrap_or_default();
            }
            Some(AgentEvent::Ended(c)) => anyhow::bail!("call ended: {c:?}"),
            Some(_) => {}
            None => anyhow::bail!("doctor agent gone"),
        }
    };
    let mut rtts = Vec::new();
    let until = tokio::time::Instant::now() + RTT_WINDOW;
    while let Ok(Some(ev)) = tokio::time::timeout_at(until, d_events.recv()).await {
        if let AgentEvent::Stats(s) = ev {
            rtts.extend(s.rtt_ms);
        }
    }
    doctor.hang_up();
    doctor.join().await;
    patient.join().await;
    rtts.sort_by(f64::total_cmp);
    Ok((elapsed, rtts.get(rtts.len() / 2).copied()))
}

/// The same peers with SDP and candidates handed over directly.
async fn direct() -> anyhow::Result<Duration> {
    let opts = || PeerOptions {
        ice_servers: Vec::new(),
        bind_ip: loopback(),
        video: video(),
        audio: AudioSource::Tone { hz: 440.0 },
        audio_output: AudioOutput::None,
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

fn rtt_summary(name: &str, mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let median = v.get(v.len() / 2).copied();
    match median {
        Some(m) => println!(
            "{name:<32} median {m:>7.2} ms   min {:>7.2} ms   max {:>7.2} ms   (n={})",
            v[0],
            v[v.len() - 1],
            v.len()
        ),
        None => println!("{name:<32} no round-trip time measured"),
    }
    median
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
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
    if std::env::var_os("BENCH_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    // `cargo bench` passes `--bench`; anything else is a smoke run.
    let runs = if std::env::args().any(|a| a == "--bench") {
        RUNS
    } else {
        1
    };
    let server = BenchNode::start().await?;
    let base = server.base.clone();
    let api = ApiClient::login_with_totp_secret(
        &Trust::default(),
        &base,
        support::LOGIN,
        support::PASSWORD,
        &server.totp,
    )
    .await?;

    let (mut node, mut relayed, mut reference) = (Vec::new(), Vec::new(), Vec::new());
    let (mut node_rtt, mut relay_rtt) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (setup, rtt) = through_node(&base, &api, false).await?;
        node.push(setup);
        node_rtt.extend(rtt);
        let (setup, rtt) = through_node(&base, &api, true).await?;
        relayed.push(setup);
        relay_rtt.extend(rtt);
        reference.push(direct().await?);
    }
    println!(
        "call set-up, admit -> first decoded video frame at the doctor (loopback, 320x240@30)"
    );
    summary("through the node (sealed)", node.clone());
    summary("through the node's TURN relay", relayed.clone());
    summary("reference: direct signalling", reference);
    println!("media round-trip time at the doctor, median of each call's first seconds");
    rtt_summary("direct path (host)", node_rtt);
    let relay_rtt = rtt_summary("through the node's TURN relay", relay_rtt);
    let met = [
        median(node) < Duration::from_secs(1),
        median(relayed) < Duration::from_secs(2),
        relay_rtt.is_some_and(|r| r < 5.0),
    ];
    println!(
        "targets: set-up < 1000 ms {}; relayed set-up < 2000 ms {}; relayed RTT < 5 ms {}",
        verdict(met[0]),
        verdict(met[1]),
        verdict(met[2]),
    );
    server.running.shutdown(Duration::from_secs(2)).await;
    // A missed budget fails `cargo bench` (the smoke run under `cargo test`
    // is an unoptimised build and only checks the measurement works).
    anyhow::ensure!(
        runs < RUNS || met.iter().all(|m| *m),
        "a call set-up or RTT target was missed"
    );
    Ok(())
}
