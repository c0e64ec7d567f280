//! Scenario tests of the consultation state machine with a fake clock: the
//! room is driven exactly as the runtime would, without sockets.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use telenode_signaling::msg::{
    ClientMsg, EndReason, ErrorCode, Hello, IceServer, Role, SealedEnvelope, ServerMsg, State,
};
use telenode_signaling::room::{ConnId, Input, Output, Room, RoomConfig, RoomError, Seat};

const LIFETIME: Duration = Duration::from_secs(3600);

/// A room, a fake clock and a connection counter.
struct Harness {
    room: Room,
    t0: Instant,
    now: Instant,
    next: u64,
    resumes: u64,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(State::Created, RoomConfig::default())
    }

    fn with(state: State, config: RoomConfig) -> Harness {
        let t0 = Instant::now();
        let room = Room::new("cons-1".into(), state, t0 + LIFETIME, config);
        Harness {
            room,
            t0,
            now: t0,
            next: 0,
            resumes: 0,
        }
    }

    fn at(&mut self, offset: Duration) {
        self.now = self.t0 + offset;
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn conn(&mut self) -> ConnId {
        self.next += 1;
        ConnId(self.next)
    }

    fn input(&mut self, input: Input) {
        self.room.handle_input(self.now, input).unwrap();
    }

    fn join(&mut self, seat: Seat) -> (ConnId, Vec<Output>) {
        let conn = self.conn();
        self.resumes += 1;
        let fresh_resume = format!("resume-{}", self.resumes);
        self.input(Input::Join {
            conn,
            seat,
            fresh_resume,
            ice_servers: vec![IceServer {
                urls: vec!["stun:stun.example.org".into()],
                username: None,
                credential: None,
            }],
        });
        (conn, self.drain())
    }

    fn doctor(&mut self) -> (ConnId, Vec<Output>) {
        self.join(Seat::Doctor)
    }

    fn patient(&mut self, resume: Option<&str>) -> (ConnId, Vec<Output>) {
        self.join(Seat::Patient {
            resume: resume.map(str::to_owned),
        })
    }

    fn send(&mut self, conn: ConnId, msg: ClientMsg) -> Vec<Output> {
        self.input(Input::Message { conn, msg });
        self.drain()
    }

    fn closed(&mut self, conn: ConnId) -> Vec<Output> {
        self.input(Input::Closed { conn });
        self.drain()
    }

    fn timeout(&mut self) -> Vec<Output> {
        self.room.handle_timeout(self.now);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.room.poll_output()).collect()
    }

    /// Patient and doctor joined, patient admitted. Returns (doctor, patient,
    /// resume).
    fn admitted(&mut self) -> (ConnId, ConnId, String) {
        let (p, out) = self.patient(None);
        let resume = resume_of(&out);
        let (d, _) = self.doctor();
        let out = self.send(d, ClientMsg::Admit);
        assert_eq!(
            out,
            vec![
                Output::StateChanged(State::Admitted),
                send(
                    d,
                    ServerMsg::Admitted {
                        ice_servers: vec![stun()]
                    }
                ),
                send(
                    p,
                    ServerMsg::Admitted {
                        ice_servers: vec![stun()]
                    }
                ),
            ]
        );
        (d, p, resume)
    }
}

fn send(conn: ConnId, msg: ServerMsg) -> Output {
    Output::Send { conn, msg }
}

fn error(conn: ConnId, code: ErrorCode) -> Output {
    send(conn, code.to_server_msg())
}

fn close(conn: ConnId) -> Output {
    Output::Close { conn }
}

fn welcome_of(out: &[Output]) -> (Role, State, bool, Option<String>) {
    out.iter()
        .find_map(|o| match o {
            Output::Send {
                msg:
                    ServerMsg::Welcome {
                        role,
                        state,
                        peer_present,
                        resume,
                        consultation,
                        ice_servers,
                    },
                ..
            } => {
                assert_eq!(consultation, "cons-1");
                // Relay credentials: the doctor always, a patient once admitted.
                let expected = usize::from(*role == Role::Doctor || state.is_admitted());
                assert_eq!(ice_servers.len(), expected, "{role:?} in {state:?}");
                Some((*role, *state, *peer_present, resume.clone()))
            }
            _ => None,
        })
        .expect("a welcome")
}

fn resume_of(out: &[Output]) -> String {
    welcome_of(out)
        .3
        .expect("patient welcome carries a resume secret")
}

fn states(out: &[Output]) -> Vec<State> {
    out.iter()
        .filter_map(|o| match o {
            Output::StateChanged(s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn knock(n: u64) -> SealedEnvelope {
    SealedEnvelope {
        epoch: "AAECAwQFBgcICQoLDA0ODw".into(),
        seq: n,
        ct: format!("knock-{n}-AAAAAAAAAAAAAAAAAAAAAA"),
    }
}

fn sealed(n: u64) -> ClientMsg {
    ClientMsg::Sealed(knock(n))
}

// --- seats ----------------------------------------------------------------------

#[test]
fn patient_then_doctor_take_the_two_seats() {
    let mut h = Harness::new();
    let (p, out) = h.patient(None);
    assert_eq!(out[0], Output::StateChanged(State::Waiting));
    let (role, state, present, resume) = welcome_of(&out);
    assert_eq!(
        (role, state, present, resume.as_deref()),
        (Role::Patient, State::Waiting, false, Some("resume-1"))
    );
    assert_eq!(out.len(), 2);

    let (d, out) = h.doctor();
    assert_eq!(welcome_of(&out), (Role::Doctor, State::Waiting, true, None));
    assert_eq!(out[1], send(d, ServerMsg::PatientWaiting));
    assert_eq!(out.len(), 2);
    let mut conns: Vec<ConnId> = h.room.connections().collect();
    conns.sort();
    assert_eq!(conns, vec![p, d]);
    assert_eq!(h.room.seat_of(p), Some(Role::Patient));
    assert_eq!(h.room.seat_of(d), Some(Role::Doctor));
}

#[test]
fn doctor_first_gets_patient_waiting_when_patient_arrives() {
    let mut h = Harness::new();
    let (d, out) = h.doctor();
    assert_eq!(out.len(), 1);
    assert_eq!(
        welcome_of(&out),
        (Role::Doctor, State::Created, false, None)
    );
    let (p, out) = h.patient(None);
    assert_eq!(
        out,
        vec![
            Output::StateChanged(State::Waiting),
            send(
                p,
                ServerMsg::Welcome {
                    role: Role::Patient,
                    consultation: "cons-1".into(),
                    state: State::Waiting,
                    peer_present: true,
                    resume: Some("resume-2".into()),
                    // A waiting patient gets no relay credentials yet.
                    ice_servers: vec![],
                }
            ),
            send(d, ServerMsg::PatientWaiting),
        ]
    );
}

#[test]
fn third_participant_refused_with_seat_taken() {
    let mut h = Harness::new();
    let (p, out) = h.patient(None);
    let resume = resume_of(&out);
    let (d, _) = h.doctor();

    // Same token, no resume: a third participant.
    let (third, out) = h.patient(None);
    assert_eq!(out, vec![error(third, ErrorCode::SeatTaken), close(third)]);
    // A wrong resume secret is no better.
    let (fourth, out) = h.patient(Some("resume-9"));
    assert_eq!(
        out,
        vec![error(fourth, ErrorCode::SeatTaken), close(fourth)]
    );
    // A prefix of the right secret neither.
    let (fifth, out) = h.patient(Some(&resume[..resume.len() - 1]));
    assert_eq!(out, vec![error(fifth, ErrorCode::SeatTaken), close(fifth)]);

    assert_eq!(h.room.state(), State::Waiting);
    let mut conns: Vec<ConnId> = h.room.connections().collect();
    conns.sort();
    assert_eq!(conns, vec![p, d]);
    // The refused connections are unknown to the room.
    assert_eq!(
        h.room.handle_input(
            h.now,
            Input::Message {
                conn: third,
                msg: ClientMsg::Ping
            }
        ),
        Err(RoomError::UnknownConnection { conn: third })
    );
}

#[test]
fn reconnect_with_resume_replaces_old_connection_and_keeps_admission() {
    let mut h = Harness::new();
    let (d, p, resume) = h.admitted();
    h.send(d, ClientMsg::Connected { path: None });
    h.send(p, ClientMsg::Connected { path: None });
    assert_eq!(h.room.state(), State::InCall);

    let (p2, out) = h.patient(Some(&resume));
    assert_eq!(out[0], error(p, ErrorCode::Replaced));
    assert_eq!(out[1], close(p));
    assert_eq!(
        welcome_of(&out),
        (Role::Patient, State::InCall, true, Some(resume.clone()))
    );
    assert_eq!(out[3], send(d, ServerMsg::PeerJoined));
    assert_eq!(out.len(), 4);
    assert!(states(&out).is_empty(), "admission kept, no state change");
    assert_eq!(h.room.seat_of(p), None);
    assert_eq!(h.room.seat_of(p2), Some(Role::Patient));

    // The old connection's late close changes nothing.
    assert_eq!(h.closed(p), vec![]);
    // Relaying goes to the new connection.
    assert_eq!(
        h.send(d, sealed(0)),
        vec![send(p2, ServerMsg::Sealed(knock(0)))]
    );
}

#[test]
fn resume_while_waiting_replaces_and_keeps_waiting() {
    let mut h = Harness::new();
    let (p, out) = h.patient(None);
    let resume = resume_of(&out);
    let (p2, out) = h.patient(Some(&resume));
    assert_eq!(out[..2], [error(p, ErrorCode::Replaced), close(p)]);
    assert_eq!(
        welcome_of(&out),
        (Role::Patient, State::Waiting, false, Some(resume))
    );
    assert_eq!(out.len(), 3);
    assert_eq!(h.room.seat_of(p2), Some(Role::Patient));
    assert_eq!(h.room.state(), State::Waiting);
}

#[test]
fn dropped_patient_returns_with_resume_and_keeps_admission() {
    let mut h = Harness::new();
    let (d, p, resume) = h.admitted();
    assert_eq!(h.closed(p), vec![send(d, ServerMsg::PeerLeft)]);
    assert_eq!(h.room.state(), State::Admitted);
    // Sealed messages to an absent seat are dropped, not queued.
    assert_eq!(h.send(d, sealed(0)), vec![]);

    let (p2, out) = h.patient(Some(&resume));
    assert_eq!(
        welcome_of(&out),
        (Role::Patient, State::Admitted, true, Some(resume))
    );
    assert_eq!(out[1], send(d, ServerMsg::PeerJoined));
    assert_eq!(out.len(), 2);
    assert_eq!(
        h.send(p2, sealed(1)),
        vec![send(d, ServerMsg::Sealed(knock(1)))]
    );
}

#[test]
fn new_device_without_resume_goes_back_to_waiting() {
    let mut h = Harness::new();
    let (d, p, old_resume) = h.admitted();
    h.send(d, ClientMsg::Connected { path: None });
    h.send(p, ClientMsg::Connected { path: None });
    assert_eq!(h.room.state(), State::InCall);
    assert_eq!(h.closed(p), vec![send(d, ServerMsg::PeerLeft)]);

    let (p2, out) = h.patient(None);
    assert_eq!(states(&out), vec![State::Waiting]);
    let (_, state, _, resume) = welcome_of(&out);
    assert_eq!(state, State::Waiting);
    let resume = resume.unwrap();
    assert_ne!(resume, old_resume, "a new session gets a new secret");
    assert_eq!(out.last(), Some(&send(d, ServerMsg::PatientWaiting)));

    // Not admitted: sealed from the doctor is refused, admission needed again.
    assert_eq!(h.send(d, sealed(0)), vec![error(d, ErrorCode::Unexpected)]);
    let out = h.send(d, ClientMsg::Admit);
    assert_eq!(states(&out), vec![State::Admitted]);
    // The doctor's earlier `connected` belonged to the old call.
    h.send(p2, ClientMsg::Connected { path: None });
    assert_eq!(h.room.state(), State::Admitted);
    let out = h.send(d, ClientMsg::Connected { path: None });
    assert_eq!(states(&out), vec![State::InCall]);

    // The old device's secret is dead.
    let (late, out) = h.patient(Some(&old_resume));
    assert_eq!(out, vec![error(late, ErrorCode::SeatTaken), close(late)]);
}

#[test]
fn stale_resume_to_free_seat_of_a_new_session_waits() {
    // Admission was loaded from the store; resume secrets live in memory
    // only, so a returning patient waits again.
    let mut h = Harness::with(State::Admitted, RoomConfig::default());
    let (_, out) = h.patient(Some("resume-from-before-restart"));
    assert_eq!(states(&out), vec![State::Waiting]);
    assert_eq!(welcome_of(&out).1, State::Waiting);
}

#[test]
fn doctor_replaced_by_second_doctor_connection() {
    let mut h = Harness::new();
    let (d1, _) = h.doctor();
    let (d2, out) = h.doctor();
    assert_eq!(out[..2], [error(d1, ErrorCode::Replaced), close(d1)]);
    assert_eq!(
        welcome_of(&out),
        (Role::Doctor, State::Created, false, None)
    );
    assert_eq!(h.room.connections().collect::<Vec<_>>(), vec![d2]);
    assert_eq!(h.closed(d1), vec![]);
}

#[test]
fn doctor_replaced_after_admission_tells_patient_peer_joined() {
    let mut h = Harness::new();
    let (d1, p, _) = h.admitted();
    let (d2, out) = h.doctor();
    assert_eq!(out[..2], [error(d1, ErrorCode::Replaced), close(d1)]);
    assert_eq!(
        welcome_of(&out),
        (Role::Doctor, State::Admitted, true, None)
    );
    assert_eq!(out[3], send(p, ServerMsg::PeerJoined));
    assert_eq!(out.len(), 4);
    assert_eq!(
        h.send(p, sealed(0)),
        vec![send(d2, ServerMsg::Sealed(knock(0)))]
    );
}

#[test]
fn doctor_drop_after_admission_is_peer_left_for_patient() {
    let mut h = Harness::new();
    let (d, p, _) = h.admitted();
    assert_eq!(h.closed(d), vec![send(p, ServerMsg::PeerLeft)]);
    assert_eq!(h.room.state(), State::Admitted);
    let (_, out) = h.doctor();
    assert_eq!(out.last(), Some(&send(p, ServerMsg::PeerJoined)));
}

// --- knocks ---------------------------------------------------------------------

#[test]
fn knock_relayed_to_present_doctor() {
    let mut h = Harness::new();
    let (d, _) = h.doctor();
    let (p, _) = h.patient(None);
    assert_eq!(
        h.send(p, sealed(0)),
        vec![send(d, ServerMsg::Sealed(knock(0)))]
    );
}

#[test]
fn knock_delivered_to_late_doctor() {
    let mut h = Harness::new();
    let (p, _) = h.patient(None);
    assert_eq!(h.send(p, sealed(0)), vec![]);
    assert_eq!(h.send(p, sealed(1)), vec![]);
    let (d, out) = h.doctor();
    assert_eq!(welcome_of(&out).1, State::Waiting);
    // Only the latest knock is kept.
    assert_eq!(
        out[1..],
        [
            send(d, ServerMsg::PatientWaiting),
            send(d, ServerMsg::Sealed(knock(1)))
        ]
    );
    // After admission the knock is not replayed to a reconnecting doctor.
    h.send(d, ClientMsg::Admit);
    let (d2, out) = h.doctor();
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Send {
            msg: ServerMsg::Sealed(_) | ServerMsg::PatientWaiting,
            ..
        }
    )));
    assert_eq!(out.last(), Some(&send(p, ServerMsg::PeerJoined)));
    let _ = d2;
}

#[test]
fn knock_of_a_patient_who_left_is_forgotten() {
    let mut h = Harness::new();
    let (p, _) = h.patient(None);
    h.send(p, sealed(0));
    assert_eq!(h.closed(p), vec![Output::StateChanged(State::Created)]);
    let (d, out) = h.doctor();
    assert_eq!(out.len(), 1, "no patient_waiting, no knock");
    let _ = d;
}

#[test]
fn too_many_knocks_are_rate_limited() {
    let config = RoomConfig {
        max_knocks: 2,
        ..RoomConfig::default()
    };
    let mut h = Harness::with(State::Created, config);
    let (d, _) = h.doctor();
    let (p, _) = h.patient(None);
    h.send(p, sealed(0));
    h.send(p, sealed(1));
    assert_eq!(
        h.send(p, sealed(2)),
        vec![
            error(p, ErrorCode::RateLimited),
            close(p),
            Output::StateChanged(State::Created)
        ]
    );
    // A new connection may knock again.
    let (p2, _) = h.patient(None);
    assert_eq!(
        h.send(p2, sealed(3)),
        vec![send(d, ServerMsg::Sealed(knock(3)))]
    );
}

// --- admission and call -----------------------------------------------------------

#[test]
fn admit_then_connected_from_both_is_in_call() {
    let mut h = Harness::new();
    let (d, p, _) = h.admitted();
    // Sealed is relayed verbatim both ways.
    assert_eq!(
        h.send(d, sealed(0)),
        vec![send(p, ServerMsg::Sealed(knock(0)))]
    );
    assert_eq!(
        h.send(p, sealed(5)),
        vec![send(d, ServerMsg::Sealed(knock(5)))]
    );
    // One side connected is not a call yet, and repeating it changes nothing.
    assert_eq!(h.send(d, ClientMsg::Connected { path: None }), vec![]);
    assert_eq!(h.send(d, ClientMsg::Connected { path: None }), vec![]);
    assert_eq!(h.room.state(), State::Admitted);
    assert_eq!(
        h.send(p, ClientMsg::Connected { path: None }),
        vec![Output::StateChanged(State::InCall)]
    );
    assert_eq!(
        h.send(p, ClientMsg::Connected { path: None }),
        vec![],
        "no second StateChanged"
    );
    // Relay keeps working in the call.
    assert_eq!(
        h.send(p, sealed(6)),
        vec![send(d, ServerMsg::Sealed(knock(6)))]
    );
}

#[test]
fn doctor_end_ends_for_both() {
    let mut h = Harness::new();
    let (d, p, _) = h.admitted();
    let out = h.send(d, ClientMsg::End);
    let ended = ServerMsg::Ended {
        reason: EndReason::DoctorEnded,
    };
    assert_eq!(out.len(), 5);
    assert!(out.contains(&send(d, ended.clone())));
    assert!(out.contains(&send(p, ended)));
    assert!(out.contains(&close(d)));
    assert!(out.contains(&close(p)));
    // Recorded before anyone is told.
    assert_eq!(out.first(), Some(&Output::StateChanged(State::Ended)));
    assert!(h.room.is_finished());
    assert_eq!(h.room.poll_timeout(), None);
    assert_eq!(h.closed(d), vec![]);
}

#[test]
fn doctor_may_end_before_anyone_waits() {
    let mut h = Harness::new();
    let (d, _) = h.doctor();
    assert_eq!(
        h.send(d, ClientMsg::End),
        vec![
            Output::StateChanged(State::Ended),
            send(
                d,
                ServerMsg::Ended {
                    reason: EndReason::DoctorEnded
                }
            ),
            close(d),
        ]
    );
}

// --- leaving ------------------------------------------------------------------------

#[test]
fn patient_leave_while_waiting_returns_to_created() {
    let mut h = Harness::new();
    let (d, _) = h.doctor();
    let (p, _) = h.patient(None);
    assert_eq!(
        h.send(p, ClientMsg::Leave),
        vec![close(p), Output::StateChanged(State::Created)]
    );
    assert_eq!(
        h.send(d, ClientMsg::Admit),
        vec![error(d, ErrorCode::Unexpected)]
    );
}

#[test]
fn patient_leave_after_admission_is_peer_left_and_forfeits_resume() {
    let mut h = Harness::new();
    let (d, p, resume) = h.admitted();
    assert_eq!(
        h.send(p, ClientMsg::Leave),
        vec![close(p), send(d, ServerMsg::PeerLeft)]
    );
    assert_eq!(h.room.state(), State::Admitted);
    let (_, out) = h.patient(Some(&resume));
    assert_eq!(states(&out), vec![State::Waiting]);
}

// --- lifetime, idle, rate -------------------------------------------------------------

#[test]
fn expired_link_ends_for_both_at_lifetime() {
    let mut h = Harness::new();
    let (d, p, _) = h.admitted();
    // Keep both connections alive past the idle timeout.
    for i in 1.. {
        h.at(Duration::from_secs(50 * i));
        if h.now >= h.t0 + LIFETIME {
            break;
        }
        h.send(d, ClientMsg::Ping);
        h.send(p, ClientMsg::Ping);
        assert!(h.timeout().is_empty());
    }
    assert!(h.room.poll_timeout().unwrap() >= h.t0 + LIFETIME - Duration::from_secs(50));
    h.at(LIFETIME);
    assert_eq!(h.room.poll_timeout(), Some(h.t0 + LIFETIME));
    let out = h.timeout();
    let ended = ServerMsg::Ended {
        reason: EndReason::Expired,
    };
    assert!(out.contains(&send(d, ended.clone())));
    assert!(out.contains(&send(p, ended)));
    assert!(out.contains(&close(d)));
    assert!(out.contains(&close(p)));
    assert_eq!(states(&out), vec![State::Expired]);
    assert!(h.room.is_finished());

    // The token of an expired consultation is refused like any bad token; the
    // doctor is told it expired.
    let (p2, out) = h.patient(None);
    assert_eq!(out, vec![error(p2, ErrorCode::BadToken), close(p2)]);
    let (d2, out) = h.doctor();
    assert_eq!(
        out,
        vec![
            send(
                d2,
                ServerMsg::Ended {
                    reason: EndReason::Expired
                }
            ),
            close(d2)
        ]
    );
}

#[test]
fn expiry_is_enforced_on_input_even_without_timeout_call() {
    let mut h = Harness::new();
    h.at(LIFETIME + Duration::from_millis(1));
    let (p, out) = h.patient(None);
    assert_eq!(
        out,
        vec![
            Output::StateChanged(State::Expired),
            error(p, ErrorCode::BadToken),
            close(p)
        ]
    );
}

#[test]
fn idle_connection_is_closed_with_idle_timeout() {
    let mut h = Harness::new();
    let (p, _) = h.patient(None);
    let (d, _) = h.doctor();
    assert_eq!(h.room.poll_timeout(), Some(h.t0 + Duration::from_secs(60)));
    h.at(Duration::from_secs(30));
    h.send(d, ClientMsg::Ping);
    h.at(Duration::from_secs(59));
    assert!(h.timeout().is_empty());
    h.at(Duration::from_secs(60));
    assert_eq!(
        h.timeout(),
        vec![
            error(p, ErrorCode::IdleTimeout),
            close(p),
            Output::StateChanged(State::Created)
        ]
    );
    assert_eq!(h.room.poll_timeout(), Some(h.t0 + Duration::from_secs(90)));
    h.at(Duration::from_secs(90));
    assert_eq!(
        h.timeout(),
        vec![error(d, ErrorCode::IdleTimeout), close(d)]
    );
    assert_eq!(h.room.poll_timeout(), Some(h.t0 + LIFETIME));
    assert!(!h.room.is_finished(), "the consultation itself lives on");
}

#[test]
fn idle_patient_after_admission_is_peer_left_for_doctor() {
    let mut h = Harness::new();
    let (d, p, _) = h.admitted();
    h.at(Duration::from_secs(40));
    h.send(d, ClientMsg::Ping);
    h.at(Duration::from_secs(60));
    assert_eq!(
        h.timeout(),
        vec![
            error(p, ErrorCode::IdleTimeout),
            close(p),
            send(d, ServerMsg::PeerLeft)
        ]
    );
    assert_eq!(h.room.state(), State::Admitted);
}

#[test]
fn flood_is_rate_limited() {
    let config = RoomConfig {
        rate_per_sec: 10,
        rate_burst: 5,
        ..RoomConfig::default()
    };
    let mut h = Harness::with(State::Created, config);
    let (d, _) = h.doctor();
    for _ in 0..5 {
        assert_eq!(h.send(d, ClientMsg::Ping), vec![send(d, ServerMsg::Pong)]);
    }
    // Sustained rate: one message per 100 ms is fine.
    for _ in 0..20 {
        h.advance(Duration::from_millis(100));
        assert_eq!(h.send(d, ClientMsg::Ping), vec![send(d, ServerMsg::Pong)]);
    }
    // The bucket is empty: one more in the same instant is too many.
    assert_eq!(
        h.send(d, ClientMsg::Ping),
        vec![error(d, ErrorCode::RateLimited), close(d)]
    );
    assert_eq!(h.room.connections().count(), 0);
}

#[test]
fn rate_limit_refills_over_time() {
    let config = RoomConfig {
        rate_per_sec: 10,
        rate_burst: 5,
        ..RoomConfig::default()
    };
    let mut h = Harness::with(State::Created, config);
    let (d, _) = h.doctor();
    for _ in 0..5 {
        h.send(d, ClientMsg::Ping);
    }
    // Half a second refills the whole burst of 5, not more.
    h.advance(Duration::from_millis(500));
    for _ in 0..5 {
        assert_eq!(h.send(d, ClientMsg::Ping), vec![send(d, ServerMsg::Pong)]);
    }
    assert_eq!(
        h.send(d, ClientMsg::Ping),
        vec![error(d, ErrorCode::RateLimited), close(d)]
    );
}

#[test]
fn default_rate_allows_a_burst_of_200() {
    let mut h = Harness::new();
    let (d, _) = h.doctor();
    for _ in 0..200 {
        assert_eq!(h.send(d, ClientMsg::Ping), vec![send(d, ServerMsg::Pong)]);
    }
    assert_eq!(
        h.send(d, ClientMsg::Ping),
        vec![error(d, ErrorCode::RateLimited), close(d)]
    );
}

// --- unexpected messages ------------------------------------------------------------

#[test]
fn unexpected_messages_are_refused_without_closing() {
    let mut h = Harness::new();
    let (d, _) = h.doctor();
    let unexpected = |c| vec![error(c, ErrorCode::Unexpected)];

    // Nobody waiting.
    assert_eq!(h.send(d, ClientMsg::Admit), unexpected(d));
    let (p, _) = h.patient(None);
    // Wrong role.
    assert_eq!(h.send(p, ClientMsg::Admit), unexpected(p));
    assert_eq!(h.send(p, ClientMsg::End), unexpected(p));
    assert_eq!(h.send(d, ClientMsg::Leave), unexpected(d));
    // Wrong state.
    assert_eq!(h.send(d, sealed(0)), unexpected(d));
    assert_eq!(
        h.send(p, ClientMsg::Connected { path: None }),
        unexpected(p)
    );
    assert_eq!(
        h.send(d, ClientMsg::Connected { path: None }),
        unexpected(d)
    );
    // A second hello.
    let hello = ClientMsg::Hello(Hello::Patient {
        token: "t".into(),
        resume: None,
    });
    assert_eq!(h.send(p, hello), unexpected(p));
    let hello = ClientMsg::Hello(Hello::Doctor {
        consultation: "cons-1".into(),
        session: "s".into(),
    });
    assert_eq!(h.send(d, hello), unexpected(d));

    assert_eq!(h.room.state(), State::Waiting);
    assert_eq!(h.room.connections().count(), 2);
    // After admission, admit again is unexpected too.
    h.send(d, ClientMsg::Admit);
    assert_eq!(h.send(d, ClientMsg::Admit), unexpected(d));
    assert_eq!(h.send(d, ClientMsg::Ping), vec![send(d, ServerMsg::Pong)]);
}

// --- terminal states and misuse ----------------------------------------------------------

#[test]
fn joins_in_terminal_states_are_refused() {
    for (state, reason) in [
        (State::Ended, EndReason::DoctorEnded),
        (State::Expired, EndReason::Expired),
    ] {
        let mut h = Harness::with(state, RoomConfig::default());
        assert!(h.room.is_finished());
        assert_eq!(h.drain(), vec![]);
        let (p, out) = h.patient(None);
        assert_eq!(out, vec![error(p, ErrorCode::BadToken), close(p)]);
        let (p, out) = h.patient(Some("resume-1"));
        assert_eq!(out, vec![error(p, ErrorCode::BadToken), close(p)]);
        let (d, out) = h.doctor();
        assert_eq!(out, vec![send(d, ServerMsg::Ended { reason }), close(d)]);
        assert_eq!(h.room.state(), state);
        assert_eq!(h.room.poll_timeout(), None);
        assert!(h.timeout().is_empty());
    }
}

#[test]
fn runtime_misuse_is_an_error_and_changes_nothing() {
    let mut h = Harness::new();
    let (d, _) = h.doctor();
    let stranger = ConnId(999);
    assert_eq!(
        h.room.handle_input(
            h.now,
            Input::Message {
                conn: stranger,
                msg: ClientMsg::Ping
            }
        ),
        Err(RoomError::UnknownConnection { conn: stranger })
    );
    assert_eq!(
        h.room.handle_input(
            h.now,
            Input::Join {
                conn: d,
                seat: Seat::Doctor,
                fresh_resume: "x".into(),
                ice_servers: vec![]
            }
        ),
        Err(RoomError::DuplicateConnection { conn: d })
    );
    // Closing an unknown connection is a no-op.
    assert_eq!(h.closed(stranger), vec![]);
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.room.connections().collect::<Vec<_>>(), vec![d]);
}

#[test]
fn state_changes_are_reported_exactly_once_each() {
    let mut h = Harness::new();
    let mut all = Vec::new();
    let (p, out) = h.patient(None);
    all.extend(out);
    let (d, out) = h.doctor();
    all.extend(out);
    all.extend(h.send(d, ClientMsg::Admit));
    all.extend(h.send(d, ClientMsg::Connected { path: None }));
    all.extend(h.send(p, ClientMsg::Connected { path: None }));
    all.extend(h.closed(p));
    all.extend(h.send(d, ClientMsg::End));
    assert_eq!(
        states(&all),
        vec![State::Waiting, State::Admitted, State::InCall, State::Ended]
    );
}

/// The ICE servers (with relay credentials) of the seat's join, out of the
/// outputs for `conn`.
fn ice_of(outputs: &[Output], conn: ConnId) -> Vec<Vec<IceServer>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                conn: c,
                msg: ServerMsg::Welcome { ice_servers, .. } | ServerMsg::Admitted { ice_servers },
            } if *c == conn => Some(ice_servers.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn relay_credentials_reach_a_patient_only_once_admitted() {
    let mut h = Harness::new();
    let (d, out) = h.doctor();
    assert_eq!(
        ice_of(&out, d),
        vec![vec![stun()]],
        "the doctor gets them at once"
    );
    let (p, out) = h.patient(None);
    assert_eq!(ice_of(&out, p), vec![vec![]], "a waiting patient gets none");
    let out = h.send(d, ClientMsg::Admit);
    assert_eq!(ice_of(&out, p), vec![vec![stun()]], "admission brings them");
    assert_eq!(ice_of(&out, d), vec![vec![stun()]]);
    // A patient resuming into an admitted consultation gets them in welcome.
    let resume = "resume-2".to_owned();
    let (p2, out) = h.patient(Some(&resume));
    assert_eq!(ice_of(&out, p2), vec![vec![stun()]]);
}

fn stun() -> IceServer {
    IceServer {
        urls: vec!["stun:stun.example.org".into()],
        username: None,
        credential: None,
    }
}

#[test]
fn the_call_path_is_relay_if_either_side_relays() {
    use telenode_signaling::msg::MediaPath;
    let mut h = Harness::new();
    let (d, p, _) = h.admitted();
    assert_eq!(h.room.media_path(), None);
    h.send(
        d,
        ClientMsg::Connected {
            path: Some(MediaPath::Direct),
        },
    );
    assert_eq!(h.room.media_path(), None, "one side unknown");
    h.send(
        p,
        ClientMsg::Connected {
            path: Some(MediaPath::Relay),
        },
    );
    assert_eq!(h.room.state(), State::InCall);
    assert_eq!(h.room.media_path(), Some(MediaPath::Relay));
    h.send(
        p,
        ClientMsg::Connected {
            path: Some(MediaPath::Direct),
        },
    );
    assert_eq!(h.room.media_path(), Some(MediaPath::Direct));
}
