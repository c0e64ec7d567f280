//! The doctor's desktop client: a native window (eframe/egui, OpenGL via
//! glow) for the whole consultation.
//!
//! - [`state`]: what the window shows and asks for — a pure state machine,
//!   unit-tested without a display.
//! - [`script`]: test automation that drives the same state machine.
//! - [`settings`]: node URL and login in the platform config directory, the
//!   session token in a 0600 file.
//! - `bridge.rs`: the tokio side (API client, call agent) behind channels.
//! - `app.rs`: drawing only.
//!
//! The network side is the same as `telenode doctor --headless`:
//! [`crate::client::ApiClient`], [`crate::client::CallAgent`] and the native
//! peer, with a [`crate::peer::MediaTap`] for the pictures and mute switches.

mod app;
mod bridge;
pub mod script;
pub mod settings;
pub mod state;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::DoctorArgs;

/// Environment variable with automation steps (see [`script`]).
pub const SCRIPT_ENV: &str = "TELENODE_GUI_SCRIPT";
/// Environment variable that turns on JSON event lines on standard output.
pub const EVENTS_ENV: &str = "TELENODE_GUI_EVENTS";

/// The QR code of `text` as a square of modules (`true` = dark), row by row.
pub fn qr_matrix(text: &str) -> Option<(usize, Vec<bool>)> {
    let code =
        qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).ok()?;
    let w = code.width();
    let modules = code
        .to_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    Some((w, modules))
}

/// Opens the window and runs until it is closed. Must be called on the main
/// thread from inside a tokio runtime (whose worker threads do the network).
pub fn run_window(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Handle::try_current()
        .context("the window needs the tokio runtime to be running")?;
    let script = match std::env::var(SCRIPT_ENV) {
        Ok(text) => Some(script::Script::parse(&text).map_err(anyhow::Error::msg)?),
        Err(_) => None,
    };
    let events = app::EventsOut {
        enabled: std::env::var_os(EVENTS_ENV).is_some_and(|v| !v.is_empty() && v != "0"),
    };

    let store = match settings::SettingsStore::platform() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "settings will not be kept");
            None
        }
    };
    let saved = match &store {
        Some(s) => s.load()?,
        None => settings::Settings::default(),
    };
    // Flags win over the saved settings; a saved session only counts for the
    // node and login it was made for.
    let node = args.node.clone().unwrap_or_else(|| saved.node.clone());
    let login = args.login.clone().unwrap_or_else(|| saved.login.clone());
    let same_account = node.trim_end_matches('/') == saved.node && login == saved.login;
    let session = store
        .as_ref()
        .and_then(settings::SettingsStore::session)
        .filter(|_| same_account && !node.is_empty());
    let password = std::env::var("TELENODE_PASSWORD").unwrap_or_default();
    let form = state::SignInForm {
        node,
        login,
        password,
        code: String::new(),
        code_from_secret: std::env::var_os(crate::client::TOTP_SECRET_ENV).is_some(),
    };
    // Flags win over the saved devices; empty settings mean the system's
    // defaults.
    let video = args.video_source(Some(&saved.camera))?;
    let audio = args.audio_source(Some(&saved.microphone));
    let audio_output = args.audio_output(Some(&saved.speaker));
    let no_microphone = audio == crate::peer::AudioSource::None;
    let chime = match &audio_output {
        crate::peer::AudioOutput::Speaker { device } => Some(device.clone()),
        crate::peer::AudioOutput::None => None,
    };
    let mut state = state::State::new(form, session.is_some(), no_microphone);
    let shown = |flag: &Option<String>, saved: &str| {
        let choice = flag.as_deref().unwrap_or(saved);
        if choice == "default" { "" } else { choice }.to_owned()
    };
    state.devices = state::DeviceChoices {
        camera: shown(&args.camera, &saved.camera),
        microphone: shown(&args.microphone, &saved.microphone),
        speaker: shown(&args.speaker, &saved.speaker),
    };

    let (req_tx, req_rx) = tokio::sync::mpsc::unbounded_channel();
    let (net_tx, net_rx) = std::sync::mpsc::channel();
    let setup = bridge::CallSetup {
        bind_ip: args.bind_ip,
        video_size: crate::cli::parse_video(&args.video).unwrap_or((640, 480, 30)),
        video,
        audio,
        audio_output,
        force_relay: args.force_relay,
        trust: args.trust()?,
    };

    let mut viewport = eframe::egui::ViewportBuilder::default()
        .with_title("telenode — doctor")
        .with_app_id("telenode")
        .with_inner_size([1024.0, 720.0])
        .with_min_inner_size([640.0, 480.0]);
    if script.is_some() {
        // Automation: a known place on the screen for screenshots.
        viewport = viewport.with_position([0.0, 0.0]);
    }
    let options = eframe::NativeOptions {
        viewport,
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    let result = eframe::run_native(
        "telenode",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let report = bridge::Reporter {
                tx: net_tx,
                wake: Arc::new(move || ctx.request_repaint()),
            };
            runtime.spawn(bridge::run(req_rx, report, store, setup));
            Ok(Box::new(app::DoctorApp::new(
                state, script, events, net_rx, req_tx, session, chime,
            )))
        }),
    );
    result.map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn qr_code_of_a_link_has_finder_patterns() {
        let url = "https://telenode.example.org/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA#BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
        let (w, m) = qr_matrix(url).unwrap();
        assert_eq!(m.len(), w * w);
        assert!(w >= 21 && (w - 17) % 4 == 0, "a QR version's size: {w}");
        // The three 7x7 finder patterns: dark outer ring, light ring, dark core.
        for (ox, oy) in [(0, 0), (w - 7, 0), (0, w - 7)] {
            let at = |x: usize, y: usize| m[(oy + y) * w + ox + x];
            assert!((0..7).all(|i| at(i, 0) && at(i, 6) && at(0, i) && at(6, i)));
            assert!((1..6).all(|i| !at(i, 1) && !at(1, i)));
            assert!(at(3, 3));
        }
    }
}
