//! Operational counters, rendered as Prometheus text on the admin listener.
//!
//! Only aggregate numbers: no labels that name a consultation, a person or an
//! address. The label sets are small and fixed (states, error codes, results).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use telenode_signaling::msg::{ErrorCode, MediaPath, State};

/// Upper bounds of the store latency histogram, in seconds.
const STORE_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The node's counters; cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Live rooms by state, kept by the hub.
    rooms_by_state: [AtomicI64; 6],
    /// State changes into `in_call`, by media path: direct, relay, unknown.
    calls_connected: [AtomicU64; 3],
    consultations_created: AtomicU64,
    signalling_connections: AtomicI64,
    logins_ok: AtomicU64,
    logins_failed: AtomicU64,
    refused: [AtomicU64; ErrorCode::ALL.len()],
    store_buckets: [AtomicU64; STORE_BUCKETS.len()],
    store_count: AtomicU64,
    store_sum_micros: AtomicU64,
    draining: std::sync::atomic::AtomicBool,
    rate_limited: [AtomicU64; 4],
    /// The embedded TURN relay's counters, when it runs.
    turn: std::sync::OnceLock<std::sync::Arc<crate::turn::TurnMetrics>>,
}

const LIMIT_CLASSES: [(super::limits::Class, &str); 4] = [
    (super::limits::Class::Page, "page"),
    (super::limits::Class::Signal, "signal"),
    (super::limits::Class::Login, "login"),
    (super::limits::Class::Api, "api"),
];

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn state_index(s: State) -> usize {
    State::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Metrics {
    /// A live room moved from `old` (None: it just appeared) to `new` (None:
    /// it was dropped).
    pub fn room_state(&self, old: Option<State>, new: Option<State>) {
        if let Some(o) = old {
            self.rooms_by_state[state_index(o)].fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(n) = new {
            self.rooms_by_state[state_index(n)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A consultation reached `in_call`; `path` as its peers reported it.
    pub fn call_connected(&self, path: Option<MediaPath>) {
        let i = match path {
            Some(MediaPath::Direct) => 0,
            Some(MediaPath::Relay) => 1,
            None => 2,
        };
        self.calls_connected[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn consultation_created(&self) {
        self.consultations_created.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.signalling_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.signalling_connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn login(&self, ok: bool) {
        let c = if ok {
            &self.logins_ok
        } else {
            &self.logins_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A signalling connection was refused or closed with this error.
    pub fn refused(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One store operation took `d`.
    pub fn store_op(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in STORE_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.store_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.store_count.fetch_add(1, Ordering::Relaxed);
        self.store_sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// A request was refused by the rate limiter.
    pub fn rate_limited(&self, class: super::limits::Class) {
        if let Some(i) = LIMIT_CLASSES.iter().position(|(c, _)| *c == class) {
            self.rate_limited[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reports the embedded TURN relay's counters from now on.
    pub fn set_turn(&self, turn: std::sync::Arc<crate::turn::TurnMetrics>) {
        let _ = self.turn.set(turn);
    }

    /// The node is shutting down: not ready any more.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        family(
            &mut out,
            "telenode_consultations",
            "gauge",
            "Live consultations (with a signalling room) by state.",
        );
        for s in State::ALL {
            let v = self.rooms_by_state[state_index(s)].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "telenode_consultations{{state=\"{}\"}} {v}",
                s.as_str()
            );
        }
        family(
            &mut out,
            "telenode_calls_connected_total",
            "counter",
            "Consultations whose two peers reported their media connected, by path (relay if either side relays).",
        );
        for (i, path) in ["direct", "relay", "unknown"].iter().enumerate() {
            let _ = writeln!(
                out,
                "telenode_calls_connected_total{{path=\"{path}\"}} {}",
                load(&self.calls_connected[i])
            );
        }
        let simple: [(&str, &str, &str, u64); 2] = [
            (
                "telenode_consultations_created_total",
                "counter",
                "Consultations created through the doctor API.",
                load(&self.consultations_created),
            ),
            (
                "telenode_signalling_connections",
                "gauge",
                "Open signalling WebSocket connections.",
                self.signalling_connections.load(Ordering::Relaxed).max(0) as u64,
            ),
        ];
        for (name, kind, help, v) in simple {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
        family(
            &mut out,
            "telenode_logins_total",
            "counter",
            "Doctor login attempts by result.",
        );
        let _ = writeln!(
            out,
            "telenode_logins_total{{result=\"ok\"}} {}",
            load(&self.logins_ok)
        );
        let _ = writeln!(
            out,
            "telenode_logins_total{{result=\"failed\"}} {}",
            load(&self.logins_failed)
        );
        family(
            &mut out,
            "telenode_signalling_refused_total",
            "counter",
            "Signalling connections refused or closed, by error code.",
        );
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "telenode_signalling_refused_total{{code=\"{}\"}} {}",
                code.as_str(),
                load(&self.refused[i])
            );
        }
        family(
            &mut out,
            "telenode_rate_limited_total",
            "counter",
            "Requests refused by the rate limiter (429), by kind.",
        );
        for (i, (_, name)) in LIMIT_CLASSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "telenode_rate_limited_total{{kind=\"{name}\"}} {}",
                load(&self.rate_limited[i])
            );
        }
        family(
            &mut out,
            "telenode_store_operation_seconds",
            "histogram",
            "Latency of metadata store operations.",
        );
        for (i, bound) in STORE_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "telenode_store_operation_seconds_bucket{{le=\"{bound}\"}} {}",
                load(&self.store_buckets[i])
            );
        }
        let count = load(&self.store_count);
        let _ = writeln!(
            out,
            "telenode_store_operation_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "telenode_store_operation_seconds_sum {}",
            load(&self.store_sum_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "telenode_store_operation_seconds_count {count}");
        self.render_turn(&mut out);
        out
    }

    /// The TURN relay's families (zeros when it does not run). No label
    /// names an allocation, a user or an address.
    fn render_turn(&self, out: &mut String) {
        let t = self.turn.get().map(|t| t.snapshot()).unwrap_or_default();
        let simple: [(&str, &str, &str, u64); 5] = [
            (
                "telenode_turn_allocations",
                "gauge",
                "TURN allocations held now.",
                t.allocations,
            ),
            (
                "telenode_turn_allocations_created_total",
                "counter",
                "TURN allocations created.",
                t.allocations_created,
            ),
            (
                "telenode_turn_relayed_packets_total",
                "counter",
                "Packets relayed by TURN, both directions.",
                t.relayed_packets,
            ),
            (
                "telenode_turn_relayed_bytes_total",
                "counter",
                "Payload bytes relayed by TURN, both directions.",
                t.relayed_bytes,
            ),
            (
                "telenode_turn_dropped_packets_total",
                "counter",
                "Packets TURN dropped (no permission or channel, over bandwidth).",
                t.dropped_packets,
            ),
        ];
        for (name, kind, help, v) in simple {
            family(out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
        family(
            out,
            "telenode_turn_refused_total",
            "counter",
            "TURN requests refused, by STUN error code (401 credentials, 403 peer policy, \
             486 quota).",
        );
        for (code, v) in [
            (401, t.unauthorized),
            (403, t.forbidden),
            (486, t.over_quota),
        ] {
            let _ = writeln!(out, "telenode_turn_refused_total{{code=\"{code}\"}} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_states_move_between_gauges() {
        let m = Metrics::default();
        m.room_state(None, Some(State::Created));
        m.room_state(Some(State::Created), Some(State::Waiting));
        m.room_state(Some(State::Waiting), Some(State::InCall));
        m.call_connected(Some(MediaPath::Relay));
        m.room_state(Some(State::InCall), None);
        let text = m.render();
        assert!(text.contains("telenode_consultations{state=\"in_call\"} 0"));
        assert!(text.contains("telenode_consultations{state=\"created\"} 0"));
        assert!(text.contains("telenode_calls_connected_total{path=\"relay\"} 1"));
        assert!(text.contains("telenode_calls_connected_total{path=\"direct\"} 0"));
    }

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.store_op(Duration::from_micros(700));
        m.store_op(Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains("telenode_store_operation_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("telenode_store_operation_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("telenode_store_operation_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("telenode_store_operation_seconds_count 2"));
    }
}
