//! No enumeration: 10,000 random join tokens and 1,000 random logins all get
//! one identical answer (or 429 once the limiter engages, which it must), and
//! the answer takes as long for a token or login that exists as for one that
//! does not. The timing figures are printed.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Node;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};

/// One join attempt: `Err(429)` when refused at the upgrade, else the first
/// answer to the hello.
async fn join(ws_url: &str, token: &str) -> Result<String, u16> {
    let (mut ws, _) = match tokio_tungstenite::connect_async(ws_url).await {
        Ok(v) => v,
        Err(tungstenite::Error::Http(res)) => return Err(res.status().as_u16()),
        Err(e) => panic!("connect: {e}"),
    };
    let hello = serde_json::json!({"v": 1, "type": "hello", "role": "patient", "token": token});
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .expect("send");
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.to_string()),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no answer: {other:?}"),
        }
    }
}

async fn login(client: &reqwest::Client, base: &str, login: &str, password: &str) -> (u16, String) {
    let res = client
        .post(format!("{base}/api/v1/login"))
        .json(&serde_json::json!({"login": login, "password": password}))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// The two tests run one after the other: the flood of the first would
/// otherwise add bursts of load to the timing measurement of the second.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn random_token() -> String {
    telenode::auth::b64u(&telenode::auth::random_bytes::<32>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_tokens_and_logins_get_one_answer_and_the_limiter_engages() {
    let _serial = SERIAL.lock().await;
    let node = Node::start().await;
    node.add_doctor("dr-enum", "Dr. Enum");

    let mut answers = BTreeSet::new();
    let mut limited = 0;
    for _ in 0..10_000 {
        match join(&node.ws_url(), &random_token()).await {
            Ok(a) => {
                answers.insert(a);
            }
            Err(429) => limited += 1,
            Err(s) => panic!("unexpected status {s}"),
        }
    }
    println!(
        "10000 random join tokens: {} answered, {limited} refused with 429",
        10_000 - limited
    );
    assert_eq!(answers.len(), 1, "one identical answer: {answers:?}");
    assert!(answers.iter().all(|a| a.contains("bad_token")));
    assert!(limited > 0, "the limiter engages");

    let client = reqwest::Client::new();
    let mut bodies = BTreeSet::new();
    let mut limited = 0;
    for i in 0..1_000 {
        let name = if i % 2 == 0 {
            "dr-enum".to_owned()
        } else {
            random_token()
        };
        match login(&client, &node.base, &name, &random_token()).await {
            (401, body) => {
                bodies.insert(body);
            }
            (429, _) => limited += 1,
            (s, body) => panic!("unexpected {s}: {body}"),
        }
    }
    println!(
        "1000 random logins: {} answered 401, {limited} refused with 429",
        1_000 - limited
    );
    assert_eq!(bodies.len(), 1, "one identical answer: {bodies:?}");
    assert!(limited > 0, "the limiter engages");
    node.stop().await;
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The timing difference of two classes and its measurement noise, from
/// paired requests: `hits[i]` and `misses[i]` were sent one right after the
/// other (in alternating order), so their difference cancels the slow drift
/// of a shared machine that unpaired medians carry.
///
/// Returns the median of the paired differences (absolute) and three
/// standard errors of that median (1.2533 · 1.4826 · MAD / √n, the MAD of
/// the differences): a difference beyond it is a real timing difference,
/// not noise. (Before the store looked tokens up with constant work,
/// unknown tokens were ~50 µs faster and this failed.)
fn compare(name: &str, hits: &[Duration], misses: &[Duration]) -> (f64, f64) {
    let mut diffs: Vec<f64> = hits
        .iter()
        .zip(misses)
        .map(|(h, m)| h.as_secs_f64() - m.as_secs_f64())
        .collect();
    let median_of = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let diff = median_of(&mut diffs);
    let mut deviations: Vec<f64> = diffs.iter().map(|d| (d - diff).abs()).collect();
    let mad = median_of(&mut deviations);
    let n = diffs.len() as f64;
    let noise = 3.0 * 1.2533 * 1.4826 * mad / n.sqrt();
    let (h, m) = (median(&mut hits.to_vec()), median(&mut misses.to_vec()));
    println!(
        "{name}: median hit {:.3} ms, miss {:.3} ms; median paired difference {:.3} ms, \
         MAD of the differences {:.3} ms, noise (3 standard errors) {:.3} ms (n={})",
        h.as_secs_f64() * 1e3,
        m.as_secs_f64() * 1e3,
        diff * 1e3,
        mad * 1e3,
        noise * 1e3,
        diffs.len()
    );
    (diff.abs(), noise)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_and_unknown_tokens_and_logins_take_the_same_time() {
    let _serial = SERIAL.lock().await;
    // Limits relaxed so that every attempt reaches the real check.
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(dir, |c| c.rate_limit_scale = 1000.0).await;
    node.add_doctor("dr-timing", "Dr. Timing");
    let api = node.login("dr-timing").await;

    // Tokens that exist but can no longer be used (ended consultations).
    let mut known = Vec::new();
    for _ in 0..20 {
        let link = api.new_consultation(None).await.expect("consultation");
        api.end(&link.consultation.id).await.expect("end");
        let (_, token, _) = telenode::client::parse_link(&link.url).expect("link");
        known.push(token);
    }
    let (mut hits, mut misses) = (Vec::new(), Vec::new());
    let mut answers = BTreeSet::new();
    for round in 0..300 {
        for hit in [round % 2 == 0, round % 2 != 0] {
            let token = if hit {
                known[round % known.len()].clone()
            } else {
                random_token()
            };
            let started = Instant::now();
            let answer = join(&node.ws_url(), &token).await.expect("not limited");
            let took = started.elapsed();
            answers.insert(answer);
            if hit {
                hits.push(took)
            } else {
                misses.push(took)
            }
        }
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    let (diff, noise) = compare("join tokens (ended vs unknown)", &hits, &misses);
    assert!(diff < noise, "token timing differs beyond the noise");

    // Logins: existing accounts with a wrong password against unknown logins,
    // each tried once (the progressive delay counts per login).
    for i in 0..24 {
        node.add_doctor(&format!("dr-t{i}"), "Dr. T");
    }
    let client = reqwest::Client::new();
    let (mut hits, mut misses) = (Vec::new(), Vec::new());
    let mut bodies = BTreeSet::new();
    for i in 0..24 {
        for hit in [i % 2 == 0, i % 2 != 0] {
            let name = if hit {
                format!("dr-t{i}")
            } else {
                format!("nobody-{}", random_token())
            };
            let started = Instant::now();
            let (status, body) = login(&client, &node.base, &name, "not the password").await;
            let took = started.elapsed();
            assert_eq!(status, 401);
            bodies.insert(body);
            if hit {
                hits.push(took)
            } else {
                misses.push(took)
            }
        }
    }
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let (diff, noise) = compare("logins (existing vs unknown)", &hits, &misses);
    assert!(diff < noise, "login timing differs beyond the noise");
    node.stop().await;
}
