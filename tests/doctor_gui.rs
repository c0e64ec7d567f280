//! The doctor's window under Xvfb against a real node: signs in, creates a
//! consultation, admits a headless-Chromium patient (fake camera) that went
//! through the page's own controls, and shows the patient's video. A
//! screenshot of the X display must show non-uniform, moving pictures where
//! the window says it drew the remote video; it is kept under
//! `target/doctor-gui/`. The QR code on the link screen must read back as
//! the link.
//!
//! The window is driven by `TELENODE_GUI_SCRIPT` (the same actions a click
//! makes) and reports through `TELENODE_GUI_EVENTS` (JSON lines).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Node;
use common::browser::{Chromium, hang_up, join_as_patient, page_sas};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A private X server; killed when dropped.
struct Xvfb {
    child: std::process::Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let base = 100 + std::process::id() % 400;
        for n in base..base + 50 {
            if Path::new(&format!("/tmp/.X{n}-lock")).exists()
                || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            {
                continue;
            }
            let display = format!(":{n}");
            let mut child = std::process::Command::new("Xvfb")
                .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb is installed (scripts/test-all installs it)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                    return Xvfb { child, display };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // lost a race for this display number
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("no X display could be started");
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/doctor-gui");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

/// Screenshot of the whole display into `path` (PNG).
fn screenshot(display: &str, path: &Path) {
    let status = std::process::Command::new("import")
        .args(["-display", display, "-window", "root"])
        .arg(path)
        .status()
        .expect("ImageMagick's import is installed (scripts/test-all installs it)");
    assert!(status.success(), "import failed: {status}");
}

/// RGB bytes of a region of a PNG.
fn crop_rgb(png: &Path, [x, y, w, h]: [u32; 4]) -> Vec<u8> {
    let out = std::process::Command::new("/usr/bin/convert")
        .arg(png)
        .args([
            "-crop",
            &format!("{w}x{h}+{x}+{y}"),
            "+repage",
            "-depth",
            "8",
            "rgb:-",
        ])
        .output()
        .expect("ImageMagick's convert");
    assert!(out.status.success(), "convert failed");
    assert_eq!(out.stdout.len(), (w * h * 3) as usize);
    out.stdout
}

fn variance(bytes: &[u8]) -> f64 {
    let n = bytes.len() as f64;
    let mean = bytes.iter().map(|&b| f64::from(b)).sum::<f64>() / n;
    bytes
        .iter()
        .map(|&b| (f64::from(b) - mean).powi(2))
        .sum::<f64>()
        / n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_window_admits_a_browser_patient_and_shows_their_video() {
    let xvfb = Xvfb::start();
    let node = Node::start().await;
    let totp = node.add_doctor("dr-weber", "Dr. Weber");
    let config_home = tempfile::tempdir().expect("tempdir");

    let mut gui = Command::new(env!("CARGO_BIN_EXE_telenode"))
        .args([
            "doctor",
            "--node",
            &node.base,
            "--login",
            "dr-weber",
            "--bind-ip",
            "127.0.0.1",
            "--video",
            "320x240@30",
        ])
        .env("DISPLAY", &xvfb.display)
        .env_remove("WAYLAND_DISPLAY")
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .env("XDG_CONFIG_HOME", config_home.path())
        .env("TELENODE_PASSWORD", common::PASSWORD)
        .env("TELENODE_TOTP_SECRET", &totp)
        .env(
            "TELENODE_GUI_SCRIPT",
            "sign-in,new-consultation,admit,done,quit",
        )
        .env("TELENODE_GUI_EVENTS", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the doctor's window starts");
    let mut lines = BufReader::new(gui.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let mut next_event = async || -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("window event in time")
            .expect("read")
            .expect("window still running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
    };

    // Sign-in → consultations → new consultation: the link.
    let url = loop {
        let ev = next_event().await;
        seen.push(ev.clone());
        match ev["event"].as_str() {
            Some("link") => break ev["url"].as_str().expect("url").to_owned(),
            Some("sign_in_failed" | "error") => panic!("window reported {ev}"),
            _ => {}
        }
    };
    let screens: Vec<&str> = seen
        .iter()
        .filter(|e| e["event"] == "screen")
        .filter_map(|e| e["screen"].as_str())
        .collect();
    assert_eq!(screens, ["sign_in", "consultations"], "{seen:?}");

    // The link screen's QR code reads back as the link.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let link_shot = artifact_dir().join("link.png");
    screenshot(&xvfb.display, &link_shot);
    let qr = std::process::Command::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(&link_shot)
        .output()
        .expect("zbarimg (zbar-tools) is installed (scripts/test-all installs it)");
    assert_eq!(
        String::from_utf8_lossy(&qr.stdout).trim(),
        url,
        "the QR code on the screen is the patient link"
    );

    // The window is titled "telenode".
    let tree = std::process::Command::new("xwininfo")
        .args(["-display", &xvfb.display, "-root", "-tree"])
        .output()
        .expect("xwininfo (x11-utils) is installed");
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(tree.contains("\"telenode"), "window title: {tree}");

    // The settings were kept in the config directory; the token privately.
    let cfg = config_home.path().join("telenode");
    let settings = std::fs::read_to_string(cfg.join("doctor.toml")).expect("settings saved");
    assert!(settings.contains("dr-weber") && settings.contains(&node.base));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cfg.join("session"))
            .expect("session kept")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The patient, in Chromium, through the page's controls.
    let chromium = Chromium::launch().await;
    let page = chromium.page().await;
    join_as_patient(&page, &url, "Erika M.").await;

    // The window shows the waiting room with the name, admits (scripted
    // click), connects and draws the patient's video.
    let mut knock = None;
    let mut sas = None;
    let mut screens = Vec::new();
    let mut last_stats = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ev = next_event().await;
        match ev["event"].as_str() {
            Some("screen") => screens.push(ev["screen"].as_str().unwrap_or("").to_owned()),
            Some("knock") => knock = ev["name"].as_str().map(str::to_owned),
            Some("connected") => sas = ev["sas"].as_str().map(str::to_owned),
            Some("stats") => {
                let good = ev["video_frames_decoded"].as_u64() > Some(60)
                    && ev["frames_shown"].as_u64() > Some(30)
                    && ev["remote_video_rect"].is_array();
                last_stats = Some(ev);
                if good {
                    break;
                }
            }
            Some("ended" | "error") => panic!("window: {ev}"),
            _ => {}
        }
    }
    assert_eq!(knock.as_deref(), Some("Erika M."));
    assert_eq!(screens, ["link", "waiting_room", "call"]);
    let stats = last_stats.expect("stats from the window");
    assert!(
        stats["video_frames_decoded"].as_u64() > Some(60)
            && stats["frames_shown"].as_u64() > Some(30),
        "the window decodes and shows the patient's video: {stats}"
    );
    let sas = sas.expect("connected");
    let digits = page_sas(&page).await;
    assert_eq!(digits, sas, "same SAS on both sides");

    // Screenshots of the display: the remote video region is non-uniform
    // and changes (live video, not a still).
    let rect: Vec<u32> = stats["remote_video_rect"]
        .as_array()
        .expect("rect")
        .iter()
        .map(|v| v.as_f64().unwrap_or(0.0).round() as u32)
        .collect();
    assert!(
        rect[2] >= 400 && rect[3] >= 300,
        "remote video is large: {rect:?}"
    );
    // Its upper half, inset from the edges: the self view sits in the
    // lower right corner and must not count.
    let region = [rect[0] + 4, rect[1] + 4, rect[2] - 8, rect[3] / 2 - 8];
    let dir = artifact_dir();
    let first = dir.join("call.png");
    screenshot(&xvfb.display, &first);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = dir.join("call-later.png");
    screenshot(&xvfb.display, &second);
    let a = crop_rgb(&first, region);
    let b = crop_rgb(&second, region);
    let var = variance(&a);
    eprintln!(
        "remote video region {region:?}: variance {var:.1}; screenshots in {}",
        dir.display()
    );
    assert!(var > 100.0, "remote video is not uniform: variance {var}");
    let changed = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(
        changed > a.len() / 100,
        "remote video moves between screenshots ({changed} bytes changed)"
    );

    // The patient hangs up; the window shows the end, goes back to the list
    // (scripted "done") and closes (scripted "quit") with status 0.
    hang_up(&page).await;
    loop {
        let ev = next_event().await;
        if ev["event"] == "ended" {
            assert_eq!(ev["reason"], "peer_hung_up");
            break;
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(20), gui.wait())
        .await
        .expect("window closes")
        .expect("wait");
    assert!(status.success(), "window exit status {status}");
    chromium.close().await;
    node.stop().await;
    drop(xvfb);
}
