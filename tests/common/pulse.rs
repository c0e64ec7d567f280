//! A private PulseAudio server for sound-device tests: a null sink as the
//! speaker (its monitor records what was played) and, as the microphone,
//! the monitor of a second null sink that `pacat` feeds a sine into with
//! 20 ms latency, both paced by the server's clock like real devices.
//! (PulseAudio's own sine source delivers in 2-second bursts, nothing like
//! a microphone.) The client reaches it through ALSA's pulse plugin, which
//! is what cpal opens as the `default` device, with `PULSE_SERVER` pointing
//! at the socket.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pulse {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    daemon: Child,
    feed: Option<Child>,
}

/// The sink the client plays into.
pub const SPEAKER: &str = "telenode_speaker";

impl Pulse {
    /// Starts the server; the microphone plays a sine at `mic_hz`.
    pub fn start(mic_hz: u32) -> Pulse {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("native");
        let script = dir.path().join("server.pa");
        std::fs::write(
            &script,
            format!(
                "load-module module-native-protocol-unix socket={} auth-anonymous=1\n\
                 load-module module-null-sink sink_name={SPEAKER} rate=48000 channels=1\n\
                 load-module module-null-sink sink_name=telenode_mic rate=48000 channels=1\n\
                 set-default-sink {SPEAKER}\n\
                 set-default-source telenode_mic.monitor\n",
                socket.display()
            ),
        )
        .expect("server.pa");
        let daemon = Command::new("pulseaudio")
            .args(["-n", "-F"])
            .arg(&script)
            .args([
                "--exit-idle-time=-1",
                "--daemonize=no",
                "--use-pid-file=no",
                "--disallow-exit",
                "--log-target=stderr",
                "--log-level=error",
            ])
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio runs (scripts/test-all installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "pulseaudio did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut pulse = Pulse {
            _dir: dir,
            socket,
            daemon,
            feed: None,
        };
        pulse.feed = Some(pulse.feed_microphone(mic_hz));
        pulse
    }

    /// Plays a sine into the microphone's sink, for as long as the server
    /// runs (pacat's pace is the server's clock).
    fn feed_microphone(&self, hz: u32) -> Child {
        let mut pacat = Command::new("pacat")
            .arg(format!("--server={}", self.server()))
            .args([
                "--device=telenode_mic",
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=20",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pacat runs");
        let mut stdin = pacat.stdin.take().expect("stdin");
        std::thread::spawn(move || {
            use std::io::Write;
            // One second of the sine, a whole number of periods, repeated.
            let second: Vec<u8> = (0..48_000)
                .flat_map(|i| {
                    let t = i as f64 / 48_000.0;
                    let s = (8000.0 * (std::f64::consts::TAU * f64::from(hz) * t).sin()) as i16;
                    s.to_le_bytes()
                })
                .collect();
            while stdin.write_all(&second).is_ok() {}
        });
        pacat
    }

    /// The value of `PULSE_SERVER` for clients.
    pub fn server(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Starts recording what is played on the speaker (48 kHz mono
    /// s16le); `Recording::finish` returns the samples.
    pub fn record_speaker(&self) -> Recording {
        let mut child = Command::new("parec")
            .arg(format!("--server={}", self.server()))
            .arg(format!("--device={SPEAKER}.monitor"))
            .args(["--raw", "--format=s16le", "--rate=48000", "--channels=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("parec runs");
        // Drained as it comes: a full pipe would stall the recording.
        let mut out = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut raw = Vec::new();
            let _ = out.read_to_end(&mut raw);
            raw
        });
        Recording { child, reader }
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        if let Some(mut feed) = self.feed.take() {
            let _ = feed.kill();
            let _ = feed.wait();
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

pub struct Recording {
    child: Child,
    reader: std::thread::JoinHandle<Vec<u8>>,
}

impl Recording {
    pub fn finish(mut self) -> Vec<i16> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let raw = self.reader.join().unwrap_or_default();
        raw.chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }
}

/// Root mean square of `samples`, 0..=32768.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}
