//! Attacks on the signalling path: a relay that tampers with, injects or
//! replays sealed envelopes makes the call fail closed on both sides; bad
//! tokens get one uniform answer; a third participant is refused; one doctor
//! cannot reach another's consultations.

mod common;

use std::time::Duration;

use common::{Node, patient_options, wait_end, wait_for};
use futures_util::{SinkExt, StreamExt};
use telenode::client::{AgentEvent, ApiClient, CallAgent, EndCause, PatientLink, parse_link};
use telenode_signaling::msg::{self, ServerMsg};
use telenode_signaling::seal::{Direction, LinkKey, Payload, Sealer};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// What the evil relay does to envelopes going from the node to the patient.
#[derive(Clone, Copy, Debug)]
enum Evil {
    /// Flip one bit of the first sealed envelope's ciphertext (the offer).
    Tamper,
    /// Replace the offer with one sealed under a key the relay made up.
    Inject,
    /// Deliver the first sealed envelope twice.
    Replay,
    /// Hold back the first sealed envelope and deliver it after the second
    /// (swapping their order, e.g. the offer and a candidate).
    Swap,
}

/// A WebSocket relay between the patient and the node that misbehaves.
async fn evil_relay(upstream: String, evil: Evil) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let Ok(client) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        let Ok((node, _)) =
            tokio_tungstenite::connect_async_with_config(upstream.as_str(), None, true).await
        else {
            return;
        };
        let (mut c_tx, mut c_rx) = client.split();
        let (mut n_tx, mut n_rx) = node.split();
        let up = async move {
            while let Some(Ok(m)) = c_rx.next().await {
                if n_tx.send(m).await.is_err() {
                    break;
                }
            }
        };
        let down = async move {
            let mut done = false;
            let mut patient_gone = false;
            let mut held: Option<Message> = None;
            let mut consultation = String::new();
            while let Some(Ok(m)) = n_rx.next().await {
                let mut out = vec![m.clone()];
                if let Message::Text(t) = &m
                    && let Ok(decoded) = msg::decode_server(t.as_str())
                {
                    if let ServerMsg::Welcome {
                        consultation: c, ..
                    } = &decoded
                    {
                        consultation = c.clone();
                    }
                    if matches!(decoded, ServerMsg::Sealed(_))
                        && let Some(first) = held.take()
                    {
                        out = vec![m.clone(), first];
                    } else if let ServerMsg::Sealed(mut env) = decoded
                        && !done
                    {
                        done = true;
                        out = match evil {
                            Evil::Tamper => {
                                let mut ct = env.ct.into_bytes();
                                // Change one base64 character in the middle.
                                let i = ct.len() / 2;
                                ct[i] = if ct[i] == b'A' { b'B' } else { b'A' };
                                env.ct = String::from_utf8(ct).expect("ascii");
                                vec![Message::Text(
                                    msg::encode_server(&ServerMsg::Sealed(env)).into(),
                                )]
                            }
                            Evil::Inject => {
                                let fake_key = LinkKey::from_bytes([7; 32]);
                                let mut sealer = Sealer::new(
                                    &fake_key,
                                    &consultation,
                                    Direction::DoctorToPatient,
                                    [9; 16],
                                );
                                let p = Payload::Offer {
                                    sdp: "v=0\r\n".into(),
                                };
                                let fake = sealer.seal(p.to_json().as_bytes()).expect("seal");
                                vec![Message::Text(
                                    msg::encode_server(&ServerMsg::Sealed(fake)).into(),
                                )]
                            }
                            Evil::Replay => vec![m.clone(), m.clone()],
                            Evil::Swap => {
                                held = Some(m.clone());
                                Vec::new()
                            }
                        };
                    }
                }
                // Keep reading after the patient has gone, until the node
                // closes: a socket dropped with unread data is reset, and the
                // reset could destroy the patient's goodbye on its way.
                for o in out {
                    if !patient_gone && c_tx.send(o).await.is_err() {
                        patient_gone = true;
                    }
                }
            }
        };
        tokio::join!(up, down);
    });
    format!("ws://{addr}/ws")
}

async fn doctor_and_link(node: &Node, login: &str) -> (ApiClient, PatientLink) {
    node.add_doctor(login, "Dr. Test");
    let api = node.login(login).await;
    let link = api.new_consultation(None).await.expect("consultation");
    (api, link)
}

async fn call_through_evil_relay(evil: Evil) {
    let node = Node::start().await;
    let (api, link) = doctor_and_link(&node, "dr-evil").await;
    let (_, token, key) = parse_link(&link.url).expect("link");
    let mut d_opts = common::doctor_options(&api, &link);
    d_opts.auto_admit = true;
    let (_doctor, mut d_events) = CallAgent::start(d_opts).await.expect("doctor");
    let relay = evil_relay(node.ws_url(), evil).await;
    let p_opts = patient_options(relay, token, None, key);
    let (_patient, mut p_events) = CallAgent::start(p_opts).await.expect("patient");

    let p_end = wait_end(&mut p_events, Duration::from_secs(20)).await;
    assert!(
        matches!(p_end, Some(EndCause::IntegrityError(_))),
        "{evil:?}: patient fails closed, got {p_end:?}"
    );
    let mut d_connected = false;
    let mut d_trace = Vec::new();
    let d_end = loop {
        match tokio::time::timeout(Duration::from_secs(30), d_events.recv()).await {
            Ok(Some(AgentEvent::Connected { .. })) => d_connected = true,
            Ok(Some(AgentEvent::Ended(c))) => break Some(c),
            Ok(Some(AgentEvent::Stats(_))) => {}
            Ok(Some(e)) => d_trace.push(format!("{e:?}")),
            _ => break None,
        }
    };
    assert!(!d_connected, "{evil:?}: the media must never connect");
    // The doctor fails closed with the integrity error the patient reports
    // in its sealed goodbye.
    assert!(
        matches!(&d_end, Some(EndCause::IntegrityError(_))),
        "{evil:?}: doctor fails closed with integrity_error, got {d_end:?}; events: {d_trace:?}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_sealed_sdp_fails_closed_on_both_sides() {
    call_through_evil_relay(Evil::Tamper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_envelope_fails_closed_on_both_sides() {
    call_through_evil_relay(Evil::Inject).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_envelope_fails_closed_on_both_sides() {
    call_through_evil_relay(Evil::Replay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_envelopes_fail_closed_on_both_sides() {
    call_through_evil_relay(Evil::Swap).await;
}

/// Sends one raw hello and returns the first answer.
async fn raw_hello(ws_url: &str, hello: serde_json::Value) -> String {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("connect");
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .expect("send");
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no answer: {other:?}"),
        }
    }
}

fn patient_hello(token: &str) -> serde_json::Value {
    serde_json::json!({"v": 1, "type": "hello", "role": "patient", "token": token})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_expired_used_and_malformed_tokens_get_one_uniform_error() {
    let node = Node::start().await;
    let (api, ended) = doctor_and_link(&node, "dr-uniform").await;
    api.end(&ended.consultation.id).await.expect("end");
    let (_, used_token, _) = parse_link(&ended.url).expect("link");

    // An expired one: created with a one-second lifetime.
    let short = api.new_consultation(Some(1)).await.expect("short link");
    let (_, expired_token, _) = parse_link(&short.url).expect("link");
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let unknown = telenode::auth::b64u(&[42u8; 32]);
    let answers = [
        raw_hello(&node.ws_url(), patient_hello(&unknown)).await,
        raw_hello(&node.ws_url(), patient_hello(&used_token)).await,
        raw_hello(&node.ws_url(), patient_hello(&expired_token)).await,
        raw_hello(&node.ws_url(), patient_hello("not-a-token")).await,
        raw_hello(&node.ws_url(), patient_hello("")).await,
    ];
    assert!(answers[0].contains("bad_token"), "{}", answers[0]);
    for a in &answers {
        assert_eq!(a, &answers[0], "every bad token gets the same answer");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_participant_is_refused() {
    let node = Node::start().await;
    let (_api, link) = doctor_and_link(&node, "dr-seats").await;
    let (_, token, _) = parse_link(&link.url).expect("link");

    let (mut first, _) = tokio_tungstenite::connect_async(node.ws_url())
        .await
        .expect("connect");
    first
        .send(Message::Text(patient_hello(&token).to_string().into()))
        .await
        .expect("send");
    let welcome = first.next().await.expect("answer").expect("frame");
    assert!(welcome.to_string().contains("\"welcome\""), "{welcome}");

    // Someone else with the same link while the seat is held.
    let answer = raw_hello(&node.ws_url(), patient_hello(&token)).await;
    assert!(answer.contains("seat_taken"), "{answer}");
    // The first patient is still there.
    first
        .send(Message::Text(r#"{"v":1,"type":"ping"}"#.into()))
        .await
        .expect("still open");
    let pong = first.next().await.expect("answer").expect("frame");
    assert!(pong.to_string().contains("pong"), "{pong}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_cannot_reach_another_doctors_consultation() {
    let node = Node::start().await;
    let (_a, link) = doctor_and_link(&node, "dr-a").await;
    node.add_doctor("dr-b", "Dr. B");
    let b = node.login("dr-b").await;
    let id = &link.consultation.id;

    assert!(b.consultations().await.expect("list").is_empty());
    // Reading it: the same answer as a consultation that does not exist.
    let read = |id: String| {
        let (base, session) = (node.base.clone(), b.session());
        async move {
            let res = reqwest::Client::new()
                .get(format!("{base}/api/v1/consultations/{id}"))
                .bearer_auth(session)
                .send()
                .await
                .expect("request");
            (res.status().as_u16(), res.text().await.expect("body"))
        }
    };
    let theirs = read(id.clone()).await;
    assert_eq!(theirs.0, 404);
    assert_eq!(theirs, read("no-such-consultation".into()).await);
    let err = b
        .end(id)
        .await
        .expect_err("cannot end another's consultation");
    assert!(err.to_string().contains("not_found"), "{err}");
    let hello = serde_json::json!({"v":1,"type":"hello","role":"doctor","consultation":id,"session":b.session()});
    let answer = raw_hello(&node.ws_url(), hello).await;
    assert!(answer.contains("forbidden"), "{answer}");
    let forged = serde_json::json!({"v":1,"type":"hello","role":"doctor","consultation":id,"session":"forged"});
    assert_eq!(raw_hello(&node.ws_url(), forged).await, answer, "uniform");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_is_refused() {
    let node = Node::start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(node.ws_url())
        .await
        .expect("connect");
    let big = format!(
        r#"{{"v":1,"type":"ping","pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let _ = ws.send(Message::Text(big.into())).await;
    // The node drops the connection (the frame exceeds the socket limit).
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the node reacts");
    if let Some(t) = end {
        assert!(t.contains("too_large") || t.contains("bad_request"), "{t}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knock_reaches_a_doctor_who_joins_later() {
    let node = Node::start().await;
    let (api, link) = doctor_and_link(&node, "dr-late").await;
    let (_, token, key) = parse_link(&link.url).expect("link");
    let p_opts = patient_options(node.ws_url(), token, Some("Late Knock"), key);
    let (_patient, mut p_events) = CallAgent::start(p_opts).await.expect("patient");
    wait_for(&mut p_events, Duration::from_secs(5), |e| {
        matches!(e, AgentEvent::Joined { .. }).then_some(())
    })
    .await
    .expect("patient waits");
    let d_opts = common::doctor_options(&api, &link);
    let (_doctor, mut d_events) = CallAgent::start(d_opts).await.expect("doctor");
    let name = common::wait_knock(&mut d_events, Duration::from_secs(5))
        .await
        .expect("knock delivered");
    assert_eq!(name.as_deref(), Some("Late Knock"));
    node.stop().await;
}

/// A raw signalling socket without Nagle; with `reset_on_close`, dropping it
/// resets the connection (SO_LINGER 0) instead of closing it.
async fn raw_socket(
    ws_url: &str,
    reset_on_close: bool,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let addr = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_owned();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    tcp.set_nodelay(true).expect("nodelay");
    if reset_on_close {
        // Through socket2: tokio deprecates it because a lingering close
        // blocks, which a zero linger does not.
        socket2::SockRef::from(&tcp)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
    }
    let (ws, _) = tokio_tungstenite::client_async(ws_url, tcp)
        .await
        .expect("upgrade");
    ws
}

async fn next_server_msg(
    ws: &mut (
             impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
             + Unpin
         ),
) -> ServerMsg {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                return msg::decode_server(t.as_str()).expect("server message");
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no message from the node: {other:?}"),
        }
    }
}

/// A patient sends its sealed goodbye and resets the connection while the
/// node is busy writing the doctor's signalling to it: the node still reads
/// and relays the goodbye (it handles what a client sent before what it
/// tells it, and reads what is left when writing fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goodbye_just_before_a_reset_still_reaches_the_doctor() {
    // Forty signalling connections from one address in a few seconds.
    let node = Node::start_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.rate_limit_scale = 10.0;
    })
    .await;
    node.add_doctor("dr-reset", "Dr. Reset");
    let api = node.login("dr-reset").await;
    for round in 0..20 {
        let link = api.new_consultation(None).await.expect("consultation");
        let (_, token, key) = parse_link(&link.url).expect("link");
        let id = link.consultation.id.clone();

        let doctor = raw_socket(&node.ws_url(), false).await;
        let (mut d_tx, mut d_rx) = doctor.split();
        let hello = serde_json::json!({"v":1,"type":"hello","role":"doctor","consultation":id,"session":api.session()});
        d_tx.send(Message::Text(hello.to_string().into()))
            .await
            .expect("doctor hello");
        assert!(matches!(
            next_server_msg(&mut d_rx).await,
            ServerMsg::Welcome { .. }
        ));

        let mut patient = raw_socket(&node.ws_url(), true).await;
        patient
            .send(Message::Text(patient_hello(&token).to_string().into()))
            .await
            .expect("patient hello");
        assert!(matches!(
            next_server_msg(&mut patient).await,
            ServerMsg::Welcome { .. }
        ));
        assert!(matches!(
            next_server_msg(&mut d_rx).await,
            ServerMsg::PatientWaiting
        ));
        d_tx.send(Message::Text(r#"{"v":1,"type":"admit"}"#.into()))
            .await
            .expect("admit");
        assert!(matches!(
            next_server_msg(&mut patient).await,
            ServerMsg::Admitted { .. }
        ));

        // The doctor keeps the node writing to the patient.
        let (k, c) = (key.clone(), id.clone());
        let chatter = tokio::spawn(async move {
            let mut sealer = Sealer::new(&k, &c, Direction::DoctorToPatient, [1; 16]);
            for _ in 0..150 {
                let env = sealer
                    .seal_payload(&Payload::Candidate {
                        candidate: "candidate:1 1 udp 1 192.0.2.1 9 typ host".into(),
                        sdp_mid: Some("0".into()),
                        sdp_mline_index: Some(0),
                    })
                    .expect("seal");
                let m = msg::encode_client(&telenode_signaling::msg::ClientMsg::Sealed(env));
                if d_tx.send(Message::Text(m.into())).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;

        // Goodbye, leave, reset: without reading what the node sent.
        let mut sealer = Sealer::new(&key, &id, Direction::PatientToDoctor, [2; 16]);
        let bye = sealer
            .seal_payload(&Payload::Bye {
                reason: "integrity_error".into(),
            })
            .expect("seal");
        let bye_ct = bye.ct.clone();
        patient
            .send(Message::Text(
                msg::encode_client(&telenode_signaling::msg::ClientMsg::Sealed(bye)).into(),
            ))
            .await
            .expect("bye");
        patient
            .send(Message::Text(r#"{"v":1,"type":"leave"}"#.into()))
            .await
            .expect("leave");
        drop(patient);

        let got_bye = loop {
            match next_server_msg(&mut d_rx).await {
                ServerMsg::Sealed(env) if env.ct == bye_ct => break true,
                ServerMsg::PeerLeft => break false,
                _ => {}
            }
        };
        chatter.abort();
        assert!(got_bye, "round {round}: the goodbye was lost");
    }
    node.stop().await;
}
