//! Doctor sign-in with a mandatory second factor, against a real node: one
//! answer for every wrong part, codes good once, recovery codes good once,
//! sessions that end on logout, reset and disable, rotate past half their
//! lifetime and end when idle.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::process::{EXE, NodeProcess, free_port, totp_secret_from};
use common::{Node, raw_login, totp_code};
use telenode::client::{ApiClient, Trust};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The session token of a successful login's body.
fn session_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).expect("json")["session"]
        .as_str()
        .expect("session")
        .to_owned()
}

/// POST /api/v1/logout with a session token.
async fn logout(base: &str, session: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/logout"))
        .bearer_auth(session)
        .send()
        .await
        .expect("logout")
}

/// GET /api/v1/consultations with a session token; the status.
async fn list_status(base: &str, session: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/consultations"))
        .bearer_auth(session)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wrong_part_gets_one_answer_and_a_code_is_good_once() {
    let node = Node::start().await;
    let secret = node.add_doctor("dr-factor", "Dr. Factor");
    let good = totp_code(&secret, 0);
    let (status, body) = raw_login(&node.base, "dr-factor", common::PASSWORD, &good).await;
    assert_eq!(status, 200, "{body}");
    let session = session_of(&body);

    let wrong_code = format!(
        "{:06}",
        (good.parse::<u32>().expect("digits") + 1) % 1_000_000
    );
    let answers = [
        (
            "replayed code",
            raw_login(&node.base, "dr-factor", common::PASSWORD, &good).await,
        ),
        (
            "wrong code",
            raw_login(&node.base, "dr-factor", common::PASSWORD, &wrong_code).await,
        ),
        (
            "no code",
            raw_login(&node.base, "dr-factor", common::PASSWORD, "").await,
        ),
        (
            "wrong password",
            raw_login(
                &node.base,
                "dr-factor",
                "not the password!",
                &totp_code(&secret, 30),
            )
            .await,
        ),
        (
            "unknown login",
            raw_login(&node.base, "dr-nobody", common::PASSWORD, &good).await,
        ),
    ];
    let first = &answers[0].1;
    assert_eq!(first.0, 401);
    assert!(first.1.contains("bad_credentials"), "{}", first.1);
    for (what, answer) in &answers {
        assert_eq!(answer, first, "{what} answers like every other failure");
    }

    // Logout ends the session.
    assert_eq!(list_status(&node.base, &session).await, 200);
    let res = logout(&node.base, &session).await;
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(list_status(&node.base, &session).await, 401);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_rotate_past_half_life_and_end_when_idle() {
    let node = Node::start_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.session_ttl_secs = 8;
        c.session_idle_secs = 3;
    })
    .await;
    node.add_doctor("dr-rotate", "Dr. Rotate");
    let api = node.login("dr-rotate").await;
    let first = api.session();

    tokio::time::sleep(Duration::from_millis(2200)).await;
    api.consultations().await.expect("in the first half");
    assert_eq!(api.session(), first, "not rotated before half-life");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    api.consultations().await.expect("past half-life");
    let second = api.session();
    assert_ne!(second, first, "rotated past half-life");

    // The old token works for a short grace, then not.
    assert_eq!(list_status(&node.base, &first).await, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        list_status(&node.base, &first).await,
        401,
        "old token after grace"
    );
    assert_eq!(list_status(&node.base, &second).await, 200, "new token");

    // Unused for longer than the idle timeout: gone.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(list_status(&node.base, &second).await, 401, "idle");
    node.stop().await;
}

/// `telenode admin --data-dir DATA doctor …`, with `stdin` on standard input;
/// standard output.
async fn admin(data: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(EXE)
        .args(["admin", "--data-dir"])
        .arg(data)
        .arg("doctor")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("admin runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).await.expect("write");
    drop(input);
    let out = child.wait_with_output().await.expect("admin");
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn recovery_codes(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 14 && l.matches('-').count() == 2)
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_codes_work_once_and_reset_and_disable_end_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let added = admin(
        &data,
        &[
            "add",
            "--login",
            "dr-ops",
            "--display-name",
            "Dr. Ops",
            "--password-stdin",
        ],
        &format!("{}\n", common::PASSWORD),
    )
    .await;
    let secret = totp_secret_from(&added);
    let codes = recovery_codes(&added);
    assert_eq!(codes.len(), telenode::auth::RECOVERY_CODES, "{added}");
    // Too short, too common: refused, nothing stored.
    for weak in ["short pw", "Password2024!"] {
        let out = Command::new(EXE)
            .args(["admin", "--data-dir"])
            .arg(&data)
            .args([
                "doctor",
                "add",
                "--login",
                "dr-weak",
                "--display-name",
                "W",
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("admin");
        let mut child = out;
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(format!("{weak}\n").as_bytes())
            .await
            .expect("write");
        drop(input);
        let out = child.wait_with_output().await.expect("admin");
        assert!(!out.status.success(), "{weak} refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("password"), "{err}");
    }
    assert!(!admin(&data, &["list"], "").await.contains("dr-weak"));

    let node = NodeProcess::start(&data, free_port().await, free_port().await, &[], "info").await;
    let base = node.base();

    // A recovery code signs in once.
    let (status, body) = raw_login(&base, "dr-ops", common::PASSWORD, &codes[0]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = raw_login(&base, "dr-ops", common::PASSWORD, &codes[0]).await;
    assert_eq!(status, 401, "a recovery code is good once");
    let by_recovery = ApiClient::login(
        &Trust::default(),
        &base,
        "dr-ops",
        common::PASSWORD,
        &codes[1].to_uppercase(),
    )
    .await
    .expect("another recovery code, any case");
    let listed = admin(&data, &["list"], "").await;
    assert!(listed.contains("8 recovery codes left"), "{listed}");

    // Reset while the node runs: sessions end, the old factor and password stop working.
    let by_totp = common::login_with_secret(&base, "dr-ops", &secret).await;
    let new_password = "a brand new passphrase 7";
    let reset = admin(
        &data,
        &["reset", "--login", "dr-ops", "--password-stdin"],
        &format!("{new_password}\n"),
    )
    .await;
    let new_secret = totp_secret_from(&reset);
    assert_ne!(new_secret, secret);
    assert_eq!(recovery_codes(&reset).len(), telenode::auth::RECOVERY_CODES);
    for api in [&by_recovery, &by_totp] {
        assert_eq!(
            list_status(&base, &api.session()).await,
            401,
            "reset ends sessions"
        );
    }
    let (status, _) = raw_login(&base, "dr-ops", common::PASSWORD, &totp_code(&secret, 30)).await;
    assert_eq!(status, 401, "old password and old factor");
    let (status, _) = raw_login(&base, "dr-ops", new_password, &totp_code(&secret, 0)).await;
    assert_eq!(status, 401, "new password, old factor");
    let (status, _) = raw_login(&base, "dr-ops", new_password, &codes[2]).await;
    assert_eq!(status, 401, "old recovery codes are gone");
    let (status, body) = raw_login(&base, "dr-ops", new_password, &totp_code(&new_secret, 0)).await;
    assert_eq!(status, 200, "{body}");
    let session = session_of(&body);

    // Disable ends the session too.
    assert_eq!(list_status(&base, &session).await, 200);
    admin(&data, &["disable", "--login", "dr-ops"], "").await;
    assert_eq!(
        list_status(&base, &session).await,
        401,
        "disable ends sessions"
    );
}

/// A logout past half-life ends the token that was presented, not just the
/// fresh one the node would otherwise rotate to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_past_half_life_ends_the_presented_session() {
    let node = Node::start_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.session_ttl_secs = 8;
    })
    .await;
    node.add_doctor("dr-leave", "Dr. Leave");
    let session = node.login("dr-leave").await.session();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let res = logout(&node.base, &session).await;
    assert_eq!(res.status().as_u16(), 204);
    assert!(
        res.headers().get("x-telenode-session").is_none(),
        "no fresh session handed out by a logout"
    );
    assert_eq!(list_status(&node.base, &session).await, 401);
    node.stop().await;
}
