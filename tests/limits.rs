//! Rate limits and the login throttle, against a real node: the signalling
//! upgrade answers 429 with Retry-After once a source is over its budget;
//! repeated wrong passwords lock the account, and the lockout answers exactly
//! like a wrong password (no hint whether the login exists or is locked).

mod common;

use std::time::{Duration, Instant};

use common::{Node, totp_code};
use tokio_tungstenite::tungstenite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signalling_upgrades_over_the_limit_get_429_with_retry_after() {
    let node = Node::start().await;
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..60 {
        match tokio_tungstenite::connect_async(node.ws_url()).await {
            Ok(_) => ok += 1,
            Err(tungstenite::Error::Http(res)) => {
                assert_eq!(res.status(), 429);
                let retry: u64 = res.headers()["retry-after"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("seconds");
                assert!((1..=60).contains(&retry), "Retry-After {retry}");
                limited += 1;
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert!(ok >= 30, "the burst goes through: {ok}");
    assert!(limited >= 20, "the limiter engages: {limited}");
    let admin = format!(
        "http://{}/metrics",
        node.running.as_ref().expect("running").admin_addr
    );
    let text = reqwest::get(admin)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        text.contains(&format!(
            "telenode_rate_limited_total{{kind=\"signal\"}} {limited}"
        )),
        "{text}"
    );
    node.stop().await;
}

/// [`common::raw_login`], and how long the answer took.
async fn login(base: &str, login: &str, password: &str, code: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let (status, body) = common::raw_login(base, login, password, code).await;
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_lock_the_account_with_a_uniform_answer() {
    let node = Node::start().await;
    let lock_secret = node.add_doctor("dr-lock", "Dr. Lock");
    let free_secret = node.add_doctor("dr-free", "Dr. Free");

    let (status, wrong_body, _) = login(
        &node.base,
        "dr-lock",
        "wrong password 1",
        &totp_code(&lock_secret, 0),
    )
    .await;
    assert_eq!(status, 401);
    let (_, unknown_body, _) = login(&node.base, "nobody-here", "wrong password 1", "123456").await;
    assert_eq!(
        unknown_body, wrong_body,
        "unknown login and wrong password look alike"
    );

    let mut delays = Vec::new();
    for i in 2..=5 {
        let (status, body, took) = login(
            &node.base,
            "dr-lock",
            &format!("wrong password {i}"),
            "123456",
        )
        .await;
        assert_eq!((status, body.as_str()), (401, wrong_body.as_str()));
        delays.push(took);
    }
    assert!(delays[3] > delays[0], "the delay grows: {delays:?}");

    // Locked: even the right password and code get the wrong-password answer.
    let (status, body, _) = login(
        &node.base,
        "dr-lock",
        common::PASSWORD,
        &totp_code(&lock_secret, 0),
    )
    .await;
    assert_eq!((status, body.as_str()), (401, wrong_body.as_str()));
    // Other accounts are not affected.
    let (status, body, _) = login(
        &node.base,
        "dr-free",
        common::PASSWORD,
        &totp_code(&free_secret, 0),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    node.stop().await;
}
