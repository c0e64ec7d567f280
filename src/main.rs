//! `telenode`: clap → Config::load → tracing → run.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use telenode::cli::{
    AdminCommand, AuditAdmin, Cli, Command, DoctorAction, DoctorAdmin, KeysAdmin, LogFormat,
};
use telenode::client::{AgentEvent, CallAgent, CallOptions};
use telenode::config::{Config, Overrides};
use telenode::store::{SqliteStore, Store};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("telenode: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("telenode: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Libraries whose debug output may carry addresses or protocol payloads;
/// they never log below info, whatever `RUST_LOG` asks for.
const QUIET_LIBRARIES: &str = "hyper=info,hyper_util=info,h2=info,tungstenite=info,\
    tokio_tungstenite=info,rustls=info,tokio_rustls=info,reqwest=info,axum=info,tower=info,\
    tower_http=info,webrtc=error,rtc=error,rtc_ice=off,rtc_mdns=off,rtc_dtls=error";

fn init_tracing(format: LogFormat) {
    let wanted = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{wanted},{QUIET_LIBRARIES}"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("info,{QUIET_LIBRARIES}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => {
            let overrides = Overrides {
                listen: a.listen,
                admin_listen: a.admin_listen,
                data_dir: a.data_dir,
                tls_cert: a.tls_cert,
                tls_key: a.tls_key,
                acme_domains: a.acme_domain,
                acme_directory: a.acme_directory,
                acme_contact: a.acme_contact,
                acme_ca_file: a.acme_ca_file,
                master_key_file: a.master_key_file,
                turn_listen: a.turn_listen,
                turn_relay_ip: a.turn_relay_ip,
                turn_tls_listen: a.turn_tls_listen,
                turn_relay_ports: a.turn_relay_ports,
                turn_tls_name: a.turn_tls_name,
                turn_secret_file: a.turn_secret_file,
                turn_allow_peer: a.turn_allow_peer,
                turn_urls: a.turn_url,
            };
            let config = Config::load(a.config.as_deref(), &overrides)?;
            if a.check_config {
                let scheme = if config.tls() { "https" } else { "http" };
                println!("configuration ok");
                println!("listen: {scheme}://{}", config.listen);
                if config.acme() {
                    println!(
                        "certificate: ACME for {} from {}",
                        config.acme_domains.join(", "),
                        config.acme_directory
                    );
                }
                println!("admin_listen: http://{}", config.admin_listen);
                println!("data_dir: {}", config.data_dir.display());
                match config.turn_listen_addr() {
                    Some(t) => {
                        println!("turn: udp+tcp {t}");
                        if let Some(tls) = config.turn_tls_listen {
                            println!("turn: tls {tls}");
                        }
                    }
                    None if config.turn_enabled() => {
                        println!("turn: external ({})", config.turn_urls.join(", "))
                    }
                    None => println!("turn: off"),
                }
                return Ok(ExitCode::SUCCESS);
            }
            serve(config).await
        }
        Command::Admin(a) => admin(a).await,
        Command::Doctor(a) => doctor(a).await,
        Command::Healthcheck { url } => {
            let res = reqwest::Client::builder()
                .timeout(Duration::from_secs(4))
                .build()?
                .get(&url)
                .send()
                .await
                .with_context(|| format!("reaching {url}"))?;
            if res.status().is_success() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("telenode: {url} answered {}", res.status());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&config.data_dir, &config.key_file())
            .with_context(|| format!("data_dir: opening {}", config.data_dir.display()))?,
    );
    let scheme = if config.tls() { "https" } else { "http" };
    let running = telenode::server::start(config, store).await?;
    tracing::info!("telenode listening on {scheme}://{}", running.addr);
    tracing::info!("operations endpoints on http://{}", running.admin_addr);
    running
        .serve_until(shutdown_signal(), telenode::server::SHUTDOWN_GRACE)
        .await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn admin(a: telenode::cli::AdminArgs) -> anyhow::Result<ExitCode> {
    let key_file = a
        .master_key_file
        .clone()
        .unwrap_or_else(|| telenode::store::keyfile::default_key_file(&a.data_dir));
    let store = SqliteStore::open(&a.data_dir, &key_file)
        .with_context(|| format!("data_dir: opening {}", a.data_dir.display()))?;
    let now = telenode::server::unix_time();
    match a.command {
        AdminCommand::Doctor(DoctorAdmin::Add {
            login,
            display_name,
            password_stdin,
        }) => {
            let login = login.trim();
            if login.is_empty() || login.len() > 128 || login.chars().any(char::is_whitespace) {
                bail!("--login must be 1 to 128 characters without spaces");
            }
            if display_name.trim().is_empty() || display_name.len() > 128 {
                bail!("--display-name must be 1 to 128 characters");
            }
            let hash = telenode::auth::new_password_hash(&read_password(password_stdin)?)?;
            let id = store.add_doctor(login, display_name.trim(), &hash, now)?;
            let (factor, codes) = enrol();
            store.set_credentials(id, None, &factor, now)?;
            println!("doctor {login} added");
            print_enrolment(login, &factor, &codes)?;
        }
        AdminCommand::Doctor(DoctorAdmin::Reset {
            login,
            password_stdin,
        }) => {
            let doctor = store
                .doctor_by_login(&login)?
                .with_context(|| format!("no doctor with login {login}"))?;
            let hash = telenode::auth::new_password_hash(&read_password(password_stdin)?)?;
            let (factor, codes) = enrol();
            store.set_credentials(doctor.id, Some(&hash), &factor, now)?;
            println!("doctor {login} reset: new password, new second factor, sessions ended");
            print_enrolment(&login, &factor, &codes)?;
        }
        AdminCommand::Doctor(DoctorAdmin::List) => {
            for d in store.list_doctors()? {
                let state = match (d.disabled, &d.second_factor) {
                    (true, _) => "disabled".to_owned(),
                    (false, None) => "no second factor (admin doctor reset)".to_owned(),
                    (false, Some(f)) => {
                        format!("active, {} recovery codes left", f.recovery_hashes.len())
                    }
                };
                println!("{}\t{}\t{}", d.login, d.display_name, state);
            }
        }
        AdminCommand::Doctor(DoctorAdmin::Disable { login }) => {
            store.set_doctor_disabled(&login, true, now)?;
            println!("doctor {login} disabled");
        }
        AdminCommand::Doctor(DoctorAdmin::Enable { login }) => {
            store.set_doctor_disabled(&login, false, now)?;
            println!("doctor {login} enabled");
        }
        AdminCommand::Keys(KeysAdmin::Rotate) => {
            let old = store.master_key_id()?;
            let new = telenode::store::MasterKey::from_bytes(telenode::auth::random_bytes());
            // Key file first (as <file>.new), then the database, then the
            // rename: a crash at any point leaves a key that opens the store.
            telenode::store::keyfile::write_pending(&key_file, &new)?;
            store.rotate_master_key(&new, now)?;
            telenode::store::keyfile::commit_pending(&key_file)?;
            println!(
                "master key rotated: {old} -> {} in {}",
                new.id_hex(),
                key_file.display()
            );
            println!("backups made before now still need the old key");
        }
        AdminCommand::Purge { retention_days } => {
            telenode::config::validate_retention_days(retention_days)?;
            let r = store.purge(now, i64::from(retention_days) * telenode::store::DAY_SECS)?;
            println!(
                "purged {} consultations, {} sessions, {} audit entries",
                r.consultations, r.sessions, r.audit_entries
            );
            if r.unreadable > 0 {
                eprintln!(
                    "telenode: {} rows failed their integrity check and were kept",
                    r.unreadable
                );
            }
        }
        AdminCommand::Backup { path } => {
            store
                .backup_to(&path)
                .with_context(|| format!("backup to {}", path.display()))?;
            println!(
                "backup written to {} (encrypted; restoring it needs master key {})",
                path.display(),
                store.master_key_id()?
            );
        }
        AdminCommand::Audit(AuditAdmin::Verify) => match store.verify_audit() {
            Ok(r) => println!(
                "audit log ok: {} entries ({}..={}), head {}",
                r.entries, r.first_seq, r.head_seq, r.head_mac
            ),
            Err(e) => {
                eprintln!("telenode: audit log verification FAILED: {e}");
                return Ok(ExitCode::FAILURE);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// The password from one line of standard input, or asked for twice on the
/// terminal (not echoed).
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if from_stdin || !std::io::stdin().is_terminal() {
        if !from_stdin {
            bail!("give the password on standard input with --password-stdin");
        }
        let mut password = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut password)
            .context("reading the password from standard input")?;
        return Ok(password.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password(format!(
        "Password (at least {} characters): ",
        telenode::auth::MIN_PASSWORD_LEN
    ))?;
    let second = rpassword::prompt_password("Password again: ")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

/// A fresh second factor and the recovery codes behind its hashes (shown
/// once, never stored).
fn enrol() -> (telenode::store::SecondFactor, Vec<String>) {
    let (codes, hashes) = telenode::auth::new_recovery_codes();
    let factor = telenode::store::SecondFactor {
        totp_secret: telenode::auth::new_totp_secret().to_vec(),
        totp_last_step: 0,
        recovery_hashes: hashes,
    };
    (factor, codes)
}

/// Prints what the doctor needs: the otpauth URI (and a QR code when
/// standard output is a terminal) and the recovery codes.
fn print_enrolment(
    login: &str,
    factor: &telenode::store::SecondFactor,
    codes: &[String],
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let uri = telenode::totp::otpauth_uri("telenode", login, &factor.totp_secret);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "second factor: add this account to an authenticator app (scan or enter):"
    )?;
    writeln!(out, "{uri}")?;
    if std::io::stdout().is_terminal()
        && let Ok(qr) = qrcode::QrCode::new(uri.as_bytes())
    {
        let art = qr
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build();
        writeln!(out, "{art}")?;
    }
    writeln!(
        out,
        "recovery codes (each signs in once instead of a code; keep them offline):"
    )?;
    for code in codes {
        writeln!(out, "  {code}")?;
    }
    Ok(())
}

/// One JSON object per line on standard output.
fn print_event(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// `telenode doctor devices`: what the client could use, one JSON line
/// per device.
fn print_devices() -> ExitCode {
    use telenode::peer::{camera, sound};
    for c in camera::cameras() {
        print_event(serde_json::json!({"device": "camera", "id": c.path, "name": c.name}));
    }
    for (kind, list) in [
        ("microphone", sound::microphones()),
        ("speaker", sound::speakers()),
    ] {
        for d in list {
            print_event(serde_json::json!({"device": kind, "id": d.id, "name": d.name}));
        }
    }
    ExitCode::SUCCESS
}

async fn doctor(mut a: telenode::cli::DoctorArgs) -> anyhow::Result<ExitCode> {
    if matches!(a.action, Some(DoctorAction::Devices)) {
        return Ok(print_devices());
    }
    if !a.headless {
        return telenode::doctor::run_window(a);
    }
    let node = a
        .node
        .clone()
        .context("--node is required with --headless")?;
    let login = a
        .login
        .clone()
        .context("--login is required with --headless")?;
    let action = a
        .action
        .take()
        .context("give an action with --headless (new-consultation, list, devices)")?;
    let password = match &a.password_file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("--password-file: reading {}", p.display()))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        None => std::env::var("TELENODE_PASSWORD")
            .context("set TELENODE_PASSWORD or give --password-file")?,
    };
    let video = a.video_source(None)?;
    let (audio, audio_output) = (a.audio_source(None), a.audio_output(None));
    if std::env::var_os(telenode::client::TOTP_SECRET_ENV).is_none() {
        bail!("set TELENODE_TOTP_SECRET (the base32 secret of the otpauth URI) for --headless");
    }
    let api = telenode::client::sign_in(&a.trust()?, &node, &login, &password, "").await?;
    match action {
        DoctorAction::Devices => Ok(print_devices()),
        DoctorAction::List => {
            for c in api.consultations().await? {
                print_event(serde_json::json!({
                    "id": c.id, "state": c.state,
                    "created_at": c.created_at, "expires_at": c.expires_at,
                }));
            }
            Ok(ExitCode::SUCCESS)
        }
        DoctorAction::NewConsultation {
            auto_admit,
            duration,
            ttl,
        } => {
            let link = api.new_consultation(ttl).await?;
            print_event(serde_json::json!({"event": "link", "url": link.url}));
            let opts = CallOptions {
                auto_admit,
                call_duration: duration.map(Duration::from_secs),
                bind_ip: a.bind_ip,
                force_relay: a.force_relay,
                audio,
                audio_output,
                ..CallOptions::doctor(&api, &link, video)
            };
            let (agent, mut events) = CallAgent::start(opts).await?;
            // Commands on standard input: `admit`, `hangup`.
            let (line_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if line_tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut clean = false;
            loop {
                tokio::select! {
                    ev = events.recv() => {
                        let Some(ev) = ev else { break };
                        print_event(ev.to_json());
                        if let AgentEvent::Ended(cause) = &ev {
                            clean = cause.is_clean();
                            if !clean {
                                eprintln!("telenode: call ended: {}", describe(cause));
                            }
                            break;
                        }
                    }
                    Some(line) = lines.recv() => match line.trim() {
                        "admit" => agent.admit(),
                        "hangup" | "end" => agent.hang_up(),
                        "" => {}
                        other => eprintln!("telenode: unknown command {other:?} (admit, hangup)"),
                    },
                }
            }
            agent.join().await;
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn describe(cause: &telenode::client::EndCause) -> String {
    use telenode::client::EndCause::*;
    match cause {
        IntegrityError(d) => format!(
            "the signalling could not be verified ({d}); the call was stopped to keep it private"
        ),
        Refused(code) => format!("the node refused the connection ({code})"),
        SetupTimeout => "the media connection could not be established in time".into(),
        MediaFailed(d) => format!("media failed: {d}"),
        ConnectionLost => "the connection to the node was lost".into(),
        Expired => "the consultation expired".into(),
        other => other.reason().to_owned(),
    }
}
