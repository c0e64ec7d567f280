//! The hub: one task that owns every live consultation [`Room`] and feeds it.
//!
//! WebSocket tasks authenticate a connection, then talk to the hub over a
//! channel; the hub drives the pure state machines of `telenode-signaling`,
//! delivers their output to the connections and records state changes in the
//! store. No lock is shared between connections.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use telenode_signaling::msg::{ClientMsg, EndReason, IceServer, ServerMsg, State};
use telenode_signaling::room::{ConnId, Input, Output, Room, RoomConfig, Seat};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::metrics::Metrics;
use super::unix_now;
use crate::store::{Store, UnixTime};

/// What a connection task receives from the hub.
#[derive(Debug)]
pub enum Outgoing {
    Msg(ServerMsg),
    /// Close the socket after sending what came before.
    Close,
    /// The node is shutting down: close with "service restart" (1012) so
    /// clients reconnect; their media keeps flowing peer to peer meanwhile.
    GoingAway,
}

/// Messages into the hub.
#[derive(Debug)]
pub enum HubCmd {
    /// An authenticated connection asks for a seat.
    Join {
        conn: ConnId,
        consultation: String,
        /// State as loaded from the store, used if the room is not live yet.
        stored_state: State,
        expires_at: UnixTime,
        seat: Seat,
        ice_servers: Vec<IceServer>,
        tx: mpsc::Sender<Outgoing>,
    },
    Message {
        conn: ConnId,
        msg: ClientMsg,
    },
    Closed {
        conn: ConnId,
    },
    /// The doctor ended the consultation through the API.
    End {
        consultation: String,
    },
    /// Close every connection with `GoingAway` and stop.
    Shutdown,
}

/// Handle used by connection tasks and the API to reach the hub.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: mpsc::UnboundedSender<HubCmd>,
}

impl Hub {
    /// Starts the hub task; the handle ends when the hub has stopped.
    pub fn spawn(
        store: Arc<dyn Store>,
        room_config: RoomConfig,
        metrics: Arc<Metrics>,
    ) -> (Hub, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = HubTask {
            store,
            room_config,
            metrics,
            rooms: HashMap::new(),
            states: HashMap::new(),
            conns: HashMap::new(),
        };
        (Hub { tx }, tokio::spawn(task.run(rx)))
    }

    pub fn send(&self, cmd: HubCmd) {
        // The hub lives as long as the runtime; a send can only fail at shutdown.
        let _ = self.tx.send(cmd);
    }
}

/// Capacity of each connection's outgoing queue; a client that lets it fill
/// up is too slow to keep and is disconnected.
pub const OUTGOING_QUEUE: usize = 128;

struct Conn {
    consultation: String,
    tx: mpsc::Sender<Outgoing>,
}

struct HubTask {
    store: Arc<dyn Store>,
    room_config: RoomConfig,
    metrics: Arc<Metrics>,
    rooms: HashMap<String, Room>,
    /// Last state of each live room, for the metrics gauges.
    states: HashMap<String, State>,
    conns: HashMap<ConnId, Conn>,
}

/// A short, non-reversible tag for a consultation in logs.
pub fn log_tag(consultation: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(consultation.as_bytes());
    format!("c-{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3])
}

impl HubTask {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<HubCmd>) {
        loop {
            let deadline = self.rooms.values().filter_map(Room::poll_timeout).min();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(HubCmd::Shutdown) | None => return self.shutdown(),
                    Some(cmd) => self.handle(cmd),
                },
                () = sleep => self.timeouts(),
            }
        }
    }

    fn shutdown(&mut self) {
        for (_, c) in self.conns.drain() {
            let _ = c.tx.try_send(Outgoing::GoingAway);
        }
        for (id, _) in self.rooms.drain() {
            self.metrics.room_state(self.states.remove(&id), None);
        }
    }

    fn now() -> std::time::Instant {
        Instant::now().into_std()
    }

    fn handle(&mut self, cmd: HubCmd) {
        let now = Self::now();
        match cmd {
            HubCmd::Join {
                conn,
                consultation,
                stored_state,
                expires_at,
                seat,
                ice_servers,
                tx,
            } => {
                let room = self.rooms.entry(consultation.clone()).or_insert_with(|| {
                    let left = (expires_at - unix_now()).max(0) as u64;
                    // Nobody is connected to a room that is not live: a patient
                    // recorded as waiting has gone.
                    let state = match stored_state {
                        State::Waiting => State::Created,
                        s => s,
                    };
                    Room::new(
                        consultation.clone(),
                        state,
                        now + Duration::from_secs(left),
                        self.room_config.clone(),
                    )
                });
                if !self.states.contains_key(&consultation) {
                    self.states.insert(consultation.clone(), room.state());
                    self.metrics.room_state(None, Some(room.state()));
                }
                self.conns.insert(
                    conn,
                    Conn {
                        consultation: consultation.clone(),
                        tx,
                    },
                );
                let input = Input::Join {
                    conn,
                    seat,
                    fresh_resume: crate::auth::b64u(&crate::auth::random_bytes::<32>()),
                    ice_servers,
                };
                if let Err(e) = room.handle_input(now, input) {
                    tracing::error!(error = %e, "room refused join");
                }
                self.drain(&consultation);
            }
            HubCmd::Message { conn, msg } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                let consultation = c.consultation.clone();
                if let Some(room) = self.rooms.get_mut(&consultation) {
                    // A message racing the room's own close of this connection.
                    if let Err(e) = room.handle_input(now, Input::Message { conn, msg }) {
                        tracing::debug!(error = %e, "message for a closed connection");
                    }
                    self.drain(&consultation);
                }
            }
            HubCmd::Closed { conn } => self.closed(now, conn),
            HubCmd::Shutdown => self.shutdown(),
            HubCmd::End { consultation } => {
                if let Some(room) = self.rooms.remove(&consultation) {
                    self.metrics
                        .room_state(self.states.remove(&consultation), None);
                    for conn in room.connections().collect::<Vec<_>>() {
                        if let Some(c) = self.conns.remove(&conn) {
                            let _ = c.tx.try_send(Outgoing::Msg(ServerMsg::Ended {
                                reason: EndReason::DoctorEnded,
                            }));
                            let _ = c.tx.try_send(Outgoing::Close);
                        }
                    }
                }
            }
        }
    }

    fn closed(&mut self, now: std::time::Instant, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(room) = self.rooms.get_mut(&c.consultation) {
            if let Err(e) = room.handle_input(now, Input::Closed { conn }) {
                tracing::debug!(error = %e, "close of a connection the room had dropped");
            }
            self.drain(&c.consultation);
        }
    }

    fn timeouts(&mut self) {
        let now = Self::now();
        let due: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for id in due {
            if let Some(room) = self.rooms.get_mut(&id) {
                room.handle_timeout(now);
            }
            self.drain(&id);
        }
    }

    /// Delivers a room's output, records its state, drops it when finished.
    fn drain(&mut self, consultation: &str) {
        let mut slow = Vec::new();
        let Some(room) = self.rooms.get_mut(consultation) else {
            return;
        };
        while let Some(out) = room.poll_output() {
            match out {
                Output::Send { conn, msg } => {
                    if let ServerMsg::Error { code, .. } = &msg
                        && code.is_fatal()
                    {
                        self.metrics.refused(*code);
                    }
                    if let Some(c) = self.conns.get(&conn)
                        && c.tx.try_send(Outgoing::Msg(msg)).is_err()
                    {
                        slow.push(conn);
                    }
                }
                Output::Close { conn } => {
                    if let Some(c) = self.conns.remove(&conn) {
                        let _ = c.tx.try_send(Outgoing::Close);
                    }
                }
                Output::StateChanged(state) => {
                    tracing::info!(consultation = %log_tag(consultation), state = state.as_str(), "state");
                    let old = self.states.insert(consultation.to_owned(), state);
                    self.metrics.room_state(old, Some(state));
                    if state == State::InCall && old != Some(State::InCall) {
                        self.metrics.call_connected(room.media_path());
                    }
                    let started = std::time::Instant::now();
                    if let Err(e) =
                        self.store
                            .set_consultation_state(consultation, state, unix_now())
                    {
                        tracing::error!(error = %e, "recording consultation state");
                    }
                    self.metrics.store_op(started.elapsed());
                }
            }
        }
        if room.is_finished() {
            self.rooms.remove(consultation);
            self.metrics
                .room_state(self.states.remove(consultation), None);
        }
        let now = Self::now();
        for conn in slow {
            tracing::info!("disconnecting a client whose queue is full");
            if let Some(c) = self.conns.get(&conn) {
                let _ = c.tx.try_send(Outgoing::Close);
            }
            self.closed(now, conn);
        }
    }
}
