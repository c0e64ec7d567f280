//! A whole consultation: the room and both peers' sealers and openers driven
//! together with a fake clock. The node only ever relays opaque envelopes.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use telenode_signaling::msg::{
    ClientMsg, ServerMsg, State, decode_client, decode_server, encode_client, encode_server,
};
use telenode_signaling::room::{ConnId, Input, Output, Room, RoomConfig, Seat};
use telenode_signaling::sas::{fingerprint_from_sdp, sas};
use telenode_signaling::seal::{Direction, LinkKey, Opener, Payload, Sealer};

const CONS: &str = "AAECAwQFBgcICQoLDA0ODw";

/// One peer: its connection and its envelope state.
struct Peer {
    conn: ConnId,
    sealer: Sealer,
    opener: Opener,
    inbox: Vec<ServerMsg>,
}

struct Call {
    room: Room,
    now: Instant,
    link_key: LinkKey,
    epochs: u8,
    conns: u64,
}

impl Call {
    fn epoch(&mut self) -> [u8; 16] {
        self.epochs += 1;
        [self.epochs; 16]
    }

    /// A new connection for `seat`: fresh epoch, fresh opener.
    fn connect(&mut self, seat: Seat) -> Peer {
        self.conns += 1;
        let conn = ConnId(self.conns);
        let (send_dir, recv_dir) = match seat {
            Seat::Doctor => (Direction::DoctorToPatient, Direction::PatientToDoctor),
            Seat::Patient { .. } => (Direction::PatientToDoctor, Direction::DoctorToPatient),
        };
        let epoch = self.epoch();
        let peer = Peer {
            conn,
            sealer: Sealer::new(&self.link_key, CONS, send_dir, epoch),
            opener: Opener::new(&self.link_key, CONS, recv_dir),
            inbox: Vec::new(),
        };
        self.room
            .handle_input(
                self.now,
                Input::Join {
                    conn,
                    seat,
                    fresh_resume: format!("resume-{}", self.conns),
                    ice_servers: vec![],
                },
            )
            .unwrap();
        peer
    }

    /// Sends `msg` from `from` through the wire codec.
    fn send(&mut self, from: &Peer, msg: &ClientMsg) {
        let msg = decode_client(&encode_client(msg)).unwrap();
        self.room
            .handle_input(
                self.now,
                Input::Message {
                    conn: from.conn,
                    msg,
                },
            )
            .unwrap();
    }

    fn seal(&mut self, from: &mut Peer, payload: &Payload) {
        let env = from.sealer.seal_payload(payload).unwrap();
        self.send(from, &ClientMsg::Sealed(env));
    }

    /// Delivers the room's outputs to the peers' inboxes (through the codec).
    fn deliver(&mut self, peers: &mut [&mut Peer]) -> Vec<Output> {
        let mut other = Vec::new();
        while let Some(out) = self.room.poll_output() {
            match out {
                Output::Send { conn, msg } => {
                    let msg = decode_server(&encode_server(&msg)).unwrap();
                    match peers.iter_mut().find(|p| p.conn == conn) {
                        Some(p) => p.inbox.push(msg),
                        None => other.push(Output::Send { conn, msg }),
                    }
                }
                o => other.push(o),
            }
        }
        other
    }
}

/// Opens every sealed message in the inbox; returns the payloads and the
/// other messages. A sender starts a fresh epoch on `peer_joined`.
fn read(peer: &mut Peer, epoch: &mut impl FnMut() -> [u8; 16]) -> (Vec<Payload>, Vec<ServerMsg>) {
    let mut payloads = Vec::new();
    let mut others = Vec::new();
    for msg in std::mem::take(&mut peer.inbox) {
        match msg {
            ServerMsg::Sealed(env) => payloads.push(peer.opener.open_payload(&env).unwrap()),
            ServerMsg::PeerJoined => {
                peer.sealer.rekey(epoch());
                others.push(ServerMsg::PeerJoined);
            }
            m => others.push(m),
        }
    }
    (payloads, others)
}

fn sdp(fp: &str) -> String {
    format!("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:sha-256 {fp}\r\n")
}

#[test]
fn full_consultation_with_reconnect() {
    let t0 = Instant::now();
    let mut call = Call {
        room: Room::new(
            CONS.into(),
            State::Created,
            t0 + Duration::from_secs(3600),
            RoomConfig::default(),
        ),
        now: t0,
        link_key: LinkKey::from_bytes([0x5a; 32]),
        epochs: 0,
        conns: 0,
    };
    let mut next_epoch = {
        let mut n = 100u8;
        move || {
            n += 1;
            [n; 16]
        }
    };

    // The patient knocks before the doctor is there.
    let mut patient = call.connect(Seat::Patient { resume: None });
    call.seal(
        &mut patient,
        &Payload::Hello {
            name: Some("Erika M.".into()),
        },
    );
    call.deliver(&mut [&mut patient]);
    let (_, msgs) = read(&mut patient, &mut next_epoch);
    let resume = match &msgs[0] {
        ServerMsg::Welcome { resume, state, .. } => {
            assert_eq!(*state, State::Waiting);
            resume.clone().unwrap()
        }
        m => panic!("expected welcome, got {m:?}"),
    };

    // The doctor arrives, reads the knock, admits.
    call.now += Duration::from_secs(5);
    let mut doctor = call.connect(Seat::Doctor);
    call.deliver(&mut [&mut doctor, &mut patient]);
    let (payloads, msgs) = read(&mut doctor, &mut next_epoch);
    assert_eq!(
        payloads,
        vec![Payload::Hello {
            name: Some("Erika M.".into())
        }]
    );
    assert!(msgs.contains(&ServerMsg::PatientWaiting));
    call.send(&doctor, &ClientMsg::Admit);
    call.deliver(&mut [&mut doctor, &mut patient]);
    assert_eq!(
        read(&mut patient, &mut next_epoch).1,
        vec![ServerMsg::Admitted {
            ice_servers: vec![]
        }]
    );
    assert_eq!(
        read(&mut doctor, &mut next_epoch).1,
        vec![ServerMsg::Admitted {
            ice_servers: vec![]
        }]
    );

    // Offer / answer / candidates, sealed end to end.
    let fd = "AA:BB:CC";
    let fp = "DD:EE:FF";
    call.seal(&mut doctor, &Payload::Offer { sdp: sdp(fd) });
    call.seal(
        &mut doctor,
        &Payload::Candidate {
            candidate: "candidate:1 1 udp 1 192.0.2.1 1 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        },
    );
    call.deliver(&mut [&mut doctor, &mut patient]);
    let (payloads, _) = read(&mut patient, &mut next_epoch);
    let Payload::Offer { sdp: offer } = &payloads[0] else {
        panic!("expected offer")
    };
    call.seal(&mut patient, &Payload::Answer { sdp: sdp(fp) });
    call.deliver(&mut [&mut doctor, &mut patient]);
    let (payloads, _) = read(&mut doctor, &mut next_epoch);
    let Payload::Answer { sdp: answer } = &payloads[0] else {
        panic!("expected answer")
    };

    // Both compute the same SAS from what they received and what they sent.
    let doctor_view = sas(
        &fingerprint_from_sdp(&sdp(fd)).unwrap(),
        &fingerprint_from_sdp(answer).unwrap(),
    );
    let patient_view = sas(
        &fingerprint_from_sdp(offer).unwrap(),
        &fingerprint_from_sdp(&sdp(fp)).unwrap(),
    );
    assert_eq!(doctor_view, patient_view);

    call.send(&doctor, &ClientMsg::Connected { path: None });
    call.send(&patient, &ClientMsg::Connected { path: None });
    let other = call.deliver(&mut [&mut doctor, &mut patient]);
    assert_eq!(other, vec![Output::StateChanged(State::InCall)]);

    // The patient's network drops; it comes back with its resume secret on a
    // new connection (fresh epoch, fresh opener).
    call.room
        .handle_input(call.now, Input::Closed { conn: patient.conn })
        .unwrap();
    call.deliver(&mut [&mut doctor]);
    assert_eq!(
        read(&mut doctor, &mut next_epoch).1,
        vec![ServerMsg::PeerLeft]
    );
    let mut patient = call.connect(Seat::Patient {
        resume: Some(resume),
    });
    call.deliver(&mut [&mut doctor, &mut patient]);
    let (_, msgs) = read(&mut patient, &mut next_epoch);
    assert!(matches!(
        msgs[0],
        ServerMsg::Welcome {
            state: State::InCall,
            peer_present: true,
            ..
        }
    ));
    // The doctor sees peer_joined and starts a fresh epoch, which the
    // patient's fresh opener accepts.
    assert_eq!(
        read(&mut doctor, &mut next_epoch).1,
        vec![ServerMsg::PeerJoined]
    );
    assert_eq!(doctor.sealer.next_seq(), 0);
    call.seal(
        &mut doctor,
        &Payload::Chat {
            text: "welcome back".into(),
        },
    );
    call.seal(&mut patient, &Payload::EndOfCandidates);
    call.deliver(&mut [&mut doctor, &mut patient]);
    assert_eq!(
        read(&mut patient, &mut next_epoch).0,
        vec![Payload::Chat {
            text: "welcome back".into()
        }]
    );
    assert_eq!(
        read(&mut doctor, &mut next_epoch).0,
        vec![Payload::EndOfCandidates]
    );

    // A relay that replays an old envelope makes the receiver fail closed.
    let env = doctor
        .sealer
        .seal_payload(&Payload::Chat { text: "x".into() })
        .unwrap();
    patient.opener.open(&env).unwrap();
    assert_eq!(patient.opener.open(&env).unwrap_err().kind(), "replay");

    // The doctor ends the consultation.
    call.seal(
        &mut doctor,
        &Payload::Bye {
            reason: "hangup".into(),
        },
    );
    call.send(&doctor, &ClientMsg::End);
    let other = call.deliver(&mut [&mut doctor, &mut patient]);
    assert!(other.contains(&Output::StateChanged(State::Ended)));
    assert!(call.room.is_finished());
}
