//! CPU of the doctor's client during a 720p30 call.
//!
//! The doctor is `telenode doctor --headless --video 1280x720@30` as a
//! process of its own (its CPU read from `/proc/<pid>/stat`); the patient
//! is a native agent in this process sending 720p30 too, both through a
//! node on loopback. Over a steady window of the call the bench prints the
//! doctor's CPU in cores, with the frames it encoded and decoded per
//! second, so that the figure is for real 720p30 both ways.
//!
//! Side by side in the same run, the reference: the codec work alone, one
//! thread encoding and decoding the same synthetic 720p frames at 30 per
//! second (libvpx with the client's settings, no WebRTC, no network),
//! measured the same way.
//!
//! Run: `cargo bench --bench client_cpu` (target: the client under one core
//! for encode + decode). `cargo test` runs a short smoke version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use telenode::client::{CallAgent, CallOptions, Seat, Trust, parse_link};
use telenode::peer::media::{TestPattern, decode_vp8, video_bitrate_kbps};
use telenode::peer::{AudioOutput, AudioSource, VideoSource};
use telenode_vpx::{EncoderConfig, Vp8Decoder, Vp8Encoder};
use tokio::io::AsyncBufReadExt;

mod support;
use support::{BenchNode, LOGIN, PASSWORD};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU seconds (user + system) of a process, or of the calling thread.
fn cpu_seconds(stat_path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(stat_path)?;
    // Fields after the command name, which is in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("odd stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based), 12 and 13 here.
    let utime: f64 = f
        .get(11)
        .ok_or_else(|| anyhow::anyhow!("short stat"))?
        .parse()?;
    let stime: f64 = f
        .get(12)
        .ok_or_else(|| anyhow::anyhow!("short stat"))?
        .parse()?;
    Ok((utime + stime) / TICKS)
}

struct Figures {
    cores: f64,
    encoded_fps: f64,
    decoded_fps: f64,
}

/// The codec work alone, paced at the frame rate, on this thread.
fn reference(window: Duration) -> anyhow::Result<Figures> {
    let mut encoder = Vp8Encoder::new(EncoderConfig::realtime(
        WIDTH,
        HEIGHT,
        FPS,
        video_bitrate_kbps(WIDTH, HEIGHT, FPS),
    ))?;
    let mut decoder = Vp8Decoder::new()?;
    let mut pattern = TestPattern::new(WIDTH, HEIGHT);
    let frame_time = Duration::from_secs(1) / FPS;
    let start = Instant::now();
    let cpu0 = cpu_seconds("/proc/thread-self/stat")?;
    let (mut encoded, mut decoded) = (0u64, 0u64);
    let mut i = 0u64;
    while start.elapsed() < window {
        for frame in encoder.encode(pattern.render(i), i as i64, false)? {
            encoded += 1;
            decoded += decode_vp8(&mut decoder, &frame.data)?.0;
        }
        i += 1;
        let next = start + frame_time * u32::try_from(i)?;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds("/proc/thread-self/stat")? - cpu0;
    Ok(Figures {
        cores: cpu / secs,
        encoded_fps: encoded as f64 / secs,
        decoded_fps: decoded as f64 / secs,
    })
}

/// The doctor's process during a 720p30 call.
async fn call(warmup: Duration, window: Duration) -> anyhow::Result<Figures> {
    let node = BenchNode::start().await?;
    let base = node.base.clone();

    let total = warmup + window + Duration::from_secs(5);
    let mut doctor = tokio::process::Command::new(env!("CARGO_BIN_EXE_telenode"))
        .args(["doctor", "--headless", "--node", &base, "--login", LOGIN])
        .args(["--bind-ip", "127.0.0.1", "--video", "1280x720@30"])
        .args(["new-consultation", "--auto-admit", "--duration"])
        .arg(total.as_secs().to_string())
        .env("TELENODE_PASSWORD", PASSWORD)
        .env("TELENODE_TOTP_SECRET", &node.totp)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_DOCTOR_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = doctor.id().ok_or_else(|| anyhow::anyhow!("doctor gone"))?;
    let stat = format!("/proc/{pid}/stat");
    let mut lines = tokio::io::BufReader::new(
        doctor
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("stdout"))?,
    )
    .lines();
    let link = lines
        .next_line()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no link"))?;
    let link: serde_json::Value = serde_json::from_str(&link)?;
    let url = link["url"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no link: {link}"))?;
    let (_, token, key) = parse_link(url)?;
    let patient = CallOptions {
        ws_url: telenode::client::ws_url(&base),
        seat: Seat::Patient { token, name: None },
        link_key: key,
        auto_admit: false,
        call_duration: None,
        setup_timeout: Duration::from_secs(20),
        bind_ip: Some("127.0.0.1".parse()?),
        video: VideoSource::Synthetic {
            width: WIDTH,
            height: HEIGHT,
            fps: FPS,
        },
        audio: AudioSource::Tone { hz: 440.0 },
        audio_output: AudioOutput::None,
        force_relay: false,
        media_tap: None,
        trust: Trust::default(),
    };
    let (patient, _p_events) = CallAgent::start(patient).await?;

    // The doctor's own stats, one line a second: the newest one is kept.
    let latest = Arc::new(std::sync::Mutex::new(None::<serde_json::Value>));
    let reader = {
        let latest = Arc::clone(&latest);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if ev["event"] == "stats" {
                    *latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(ev);
                } else if ev["event"] == "ended" {
                    break;
                }
            }
        })
    };
    let reading = || {
        latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no stats from the doctor yet"))
    };
    tokio::time::sleep(warmup).await;
    let first = reading()?;
    let (t0, cpu0) = (Instant::now(), cpu_seconds(&stat)?);
    tokio::time::sleep(window).await;
    let last = reading()?;
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds(&stat)? - cpu0);
    reader.abort();
    let count = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or(0) as f64;
    let figures = Figures {
        cores: cpu / secs,
        encoded_fps: (count(&last, "video_frames_sent") - count(&first, "video_frames_sent"))
            / secs,
        decoded_fps: (count(&last, "video_frames_decoded") - count(&first, "video_frames_decoded"))
            / secs,
    };
    patient.hang_up();
    patient.join().await;
    let _ = doctor.kill().await;
    node.running.shutdown(Duration::from_secs(2)).await;
    Ok(figures)
}

fn print(name: &str, f: &Figures) {
    println!(
        "{name:<44} {:>5.2} cores   encoded {:>5.1} fps   decoded {:>5.1} fps",
        f.cores, f.encoded_fps, f.decoded_fps
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let bench = std::env::args().any(|a| a == "--bench");
    let (warmup, window) = if bench {
        (Duration::from_secs(5), Duration::from_secs(20))
    } else {
        (Duration::from_secs(2), Duration::from_secs(3))
    };
    let client = call(warmup, window).await?;
    let codec = tokio::task::spawn_blocking(move || reference(window)).await??;
    println!("CPU of the doctor's client, 720p30 video both ways on loopback ({window:?} window)");
    print("doctor client (telenode doctor --headless)", &client);
    print("reference: VP8 encode + decode alone", &codec);
    println!(
        "target: under one core for encode + decode: {}",
        if client.cores < 1.0 { "met" } else { "MISSED" }
    );
    // A figure for a call that did not run would mean nothing. (The smoke
    // run is an unoptimised build sharing two cores with the patient: it
    // only has to move frames.)
    let floor = if bench { 20.0 } else { 1.0 };
    anyhow::ensure!(
        client.decoded_fps > floor && client.encoded_fps > floor,
        "the call did not run at a real frame rate"
    );
    anyhow::ensure!(
        !bench || client.cores < 1.0,
        "the client used {:.2} cores, the budget is one",
        client.cores
    );
    Ok(())
}
