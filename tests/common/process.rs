//! The `telenode` binary as a separate process: `admin doctor add` and a
//! `serve` whose standard error is collected.
#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub const EXE: &str = env!("CARGO_BIN_EXE_telenode");

/// A free TCP port on 127.0.0.1.
pub async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr").port()
}

/// `telenode admin --data-dir DATA doctor add … --password-stdin`; returns
/// the TOTP secret (base32) from the otpauth URI it prints.
pub async fn admin_add_doctor(data: &Path, login: &str, name: &str) -> String {
    let mut add = Command::new(EXE)
        .args(["admin", "--data-dir"])
        .arg(data)
        .args([
            "doctor",
            "add",
            "--login",
            login,
            "--display-name",
            name,
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("admin runs");
    let mut stdin = add.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{}\n", super::PASSWORD).as_bytes())
        .await
        .expect("write");
    drop(stdin);
    let out = add.wait_with_output().await.expect("admin");
    assert!(out.status.success());
    totp_secret_from(&String::from_utf8_lossy(&out.stdout))
}

/// The base32 secret of the otpauth URI in `admin doctor add|reset` output.
pub fn totp_secret_from(stdout: &str) -> String {
    let uri = stdout
        .lines()
        .find(|l| l.starts_with("otpauth://totp/"))
        .unwrap_or_else(|| panic!("no otpauth URI in:\n{stdout}"));
    uri.split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .expect("secret parameter")
        .to_owned()
}

/// `telenode serve` on the given loopback ports, TURN on an ephemeral port;
/// killed on drop.
pub struct NodeProcess {
    pub child: Child,
    /// Everything it wrote to standard error so far.
    pub log: Arc<Mutex<String>>,
    pub listen: String,
    pub admin_listen: String,
}

impl NodeProcess {
    /// Starts it and waits until it listens. `extra` goes after the listen
    /// flags; `rust_log` sets its log level.
    pub async fn start(
        data: &Path,
        port: u16,
        admin_port: u16,
        extra: &[&str],
        rust_log: &str,
    ) -> NodeProcess {
        let listen = format!("127.0.0.1:{port}");
        let admin_listen = format!("127.0.0.1:{admin_port}");
        Self::start_with(
            Command::new(EXE),
            &listen,
            &admin_listen,
            |c| {
                c.args(["--turn-listen", "127.0.0.1:0"])
                    .args(extra)
                    .arg("--data-dir")
                    .arg(data);
            },
            rust_log,
        )
        .await
    }

    /// Runs `command` (the binary, or a wrapper such as `ip netns exec NS`
    /// followed by it) with `serve --listen … --admin-listen …` and what
    /// `more` adds, and waits until it listens.
    pub async fn start_with(
        mut command: Command,
        listen: &str,
        admin_listen: &str,
        more: impl FnOnce(&mut Command),
        rust_log: &str,
    ) -> NodeProcess {
        command.args(["serve", "--listen", listen, "--admin-listen", admin_listen]);
        more(&mut command);
        let mut child = command
            .env("RUST_LOG", rust_log)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        // Keeps draining the pipe so the node never blocks on it.
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("listening")
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(());
                }
                let mut l = sink.lock().expect("lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        tokio::time::timeout(Duration::from_secs(20), ready_rx)
            .await
            .expect("node listens in time")
            .expect("node started");
        NodeProcess {
            child,
            log,
            listen: listen.to_owned(),
            admin_listen: admin_listen.to_owned(),
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.listen)
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("lock").clone()
    }
}

/// `telenode doctor --headless` signed in as `login` (password
/// [`super::PASSWORD`], second factor from `totp`) at the node `base`, its
/// media on loopback, with `args` after that (options, then the action);
/// logs at `warn`.
pub fn headless_doctor_command(base: &str, login: &str, totp: &str, args: &[&str]) -> Command {
    let mut command = Command::new(EXE);
    command
        .args(["doctor", "--headless", "--node", base, "--login", login])
        .args(["--bind-ip", "127.0.0.1"])
        .args(args)
        .env("TELENODE_PASSWORD", super::PASSWORD)
        .env("TELENODE_TOTP_SECRET", totp)
        .env("RUST_LOG", "warn");
    command
}

/// `telenode doctor --headless …` as a process, read one JSON event a line.
pub struct HeadlessDoctor {
    pub child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl HeadlessDoctor {
    /// Spawns `command` (the binary or a wrapper, with its arguments and
    /// environment), killed on drop.
    pub fn spawn(mut command: Command) -> HeadlessDoctor {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("doctor starts");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        HeadlessDoctor { child, lines }
    }

    /// The next event (within 30 s).
    pub async fn next_event(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("doctor event in time")
            .expect("read")
            .expect("doctor still running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
    }
}
