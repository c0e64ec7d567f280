//! Rate limits for every unauthenticated surface, per source and globally,
//! and the failed-login throttle. Pure: time is passed in; the runtime keeps
//! one [`Limits`] behind a mutex and asks it before doing any work.
//!
//! Sources are keyed by IPv4 address or IPv6 /64 (one subscriber's prefix),
//! so an attacker cannot rotate through the addresses of one network. Only
//! counters are kept, never logged, and they fall away after they go idle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Opening a patient link page.
    Page,
    /// A WebSocket upgrade (then a join or a doctor hello).
    Signal,
    /// A login attempt.
    Login,
    /// Any other API call.
    Api,
}

/// Rate and burst of one token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

impl Rate {
    const fn new(per_sec: f64, burst: f64) -> Rate {
        Rate { per_sec, burst }
    }
}

/// Limits per class: per source and over all sources.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    pub per_source: [(Class, Rate); 4],
    pub global: [(Class, Rate); 4],
    /// Failed logins of one account before it is locked for `lockout`.
    pub login_failures_before_lockout: u32,
    pub lockout: Duration,
    /// Upper bound of tracked sources; idle ones are dropped first.
    pub max_tracked: usize,
    /// Open signalling connections one source may hold at once.
    pub max_connections_per_source: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            per_source: [
                (Class::Page, Rate::new(2.0, 30.0)),
                (Class::Signal, Rate::new(2.0, 30.0)),
                (Class::Login, Rate::new(0.2, 10.0)),
                (Class::Api, Rate::new(20.0, 200.0)),
            ],
            global: [
                (Class::Page, Rate::new(200.0, 2000.0)),
                (Class::Signal, Rate::new(200.0, 2000.0)),
                (Class::Login, Rate::new(20.0, 200.0)),
                (Class::Api, Rate::new(1000.0, 5000.0)),
            ],
            login_failures_before_lockout: 5,
            lockout: Duration::from_secs(15 * 60),
            max_tracked: 100_000,
            max_connections_per_source: 20,
        }
    }
}

impl LimitsConfig {
    /// Every rate, burst and connection cap multiplied by `factor` (for a
    /// clinic whose patients share one address behind a large NAT).
    pub fn scaled(mut self, factor: f64) -> LimitsConfig {
        for (_, r) in self.per_source.iter_mut().chain(self.global.iter_mut()) {
            r.per_sec *= factor;
            r.burst = (r.burst * factor).max(1.0);
        }
        self.max_connections_per_source = ((self.max_connections_per_source as f64) * factor)
            .ceil()
            .max(1.0) as u32;
        self
    }
}

/// The answer to "may this go ahead?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refuse with 429 and this `Retry-After`.
    Limited {
        retry_after: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    /// Takes one token if there is one; otherwise says how long until there is.
    fn take(&mut self, rate: Rate, now: Instant) -> Decision {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Decision::Allow
        } else {
            let wait = (1.0 - self.tokens) / rate.per_sec.max(f64::MIN_POSITIVE);
            Decision::Limited {
                retry_after: Duration::from_secs_f64(wait.ceil().max(1.0)),
            }
        }
    }

    fn idle_full(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate.per_sec >= rate.burst
    }
}

/// An IPv4 address or the /64 of an IPv6 address (IPv4-mapped IPv6 counts
/// as the IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey(u128);

impl From<IpAddr> for SourceKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => SourceKey(u32::from(v4) as u128),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey(u32::from(v4) as u128),
                None => SourceKey((u128::from(v6) >> 64) | (1 << 127)),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// The limiter state.
#[derive(Debug)]
pub struct Limits {
    config: LimitsConfig,
    sources: HashMap<(SourceKey, Class), Bucket>,
    global: HashMap<Class, Bucket>,
    /// Failed logins by account key (a hash of the login, made by the caller).
    failures: HashMap<[u8; 32], Failures>,
    /// Open signalling connections by source.
    open: HashMap<SourceKey, u32>,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Limits {
        Limits {
            config,
            sources: HashMap::new(),
            global: HashMap::new(),
            failures: HashMap::new(),
            open: HashMap::new(),
        }
    }

    /// A signalling connection from `source` wants to open; false when the
    /// source already holds its maximum. Pair every `true` with
    /// [`Limits::connection_closed`].
    pub fn connection_opened(&mut self, source: IpAddr) -> bool {
        let n = self.open.entry(SourceKey::from(source)).or_insert(0);
        if *n >= self.config.max_connections_per_source {
            return false;
        }
        *n += 1;
        true
    }

    pub fn connection_closed(&mut self, source: IpAddr) {
        let key = SourceKey::from(source);
        if let Some(n) = self.open.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&key);
            }
        }
    }

    fn rate(table: &[(Class, Rate); 4], class: Class) -> Rate {
        table
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, r)| *r)
            .unwrap_or(Rate::new(1.0, 1.0))
    }

    /// One request of `class` from `source` at `now`. The source is checked
    /// first so that one noisy source cannot drain the global budget.
    pub fn check(&mut self, now: Instant, source: IpAddr, class: Class) -> Decision {
        if self.sources.len() >= self.config.max_tracked {
            self.prune(now);
        }
        let per = Self::rate(&self.config.per_source, class);
        let bucket = self
            .sources
            .entry((SourceKey::from(source), class))
            .or_insert_with(|| Bucket::full(per, now));
        if let d @ Decision::Limited { .. } = bucket.take(per, now) {
            return d;
        }
        let global = Self::rate(&self.config.global, class);
        self.global
            .entry(class)
            .or_insert_with(|| Bucket::full(global, now))
            .take(global, now)
    }

    /// Drops buckets that have refilled completely (they hold no history).
    pub fn prune(&mut self, now: Instant) {
        let per_source = self.config.per_source;
        self.sources
            .retain(|(_, class), b| !b.idle_full(Self::rate(&per_source, *class), now));
        let lockout = self.config.lockout;
        self.failures.retain(|_, f| {
            f.locked_until.is_some_and(|t| t > now)
                || now.saturating_duration_since(f.last) < lockout
        });
    }

    /// Whether the account is locked out now.
    pub fn is_locked(&self, now: Instant, account: &[u8; 32]) -> bool {
        self.failures
            .get(account)
            .and_then(|f| f.locked_until)
            .is_some_and(|t| t > now)
    }

    /// Records a failed login; returns how long the answer should be held
    /// back (progressive: 0.25 s, 0.5 s, 1 s, 2 s, … at most 4 s).
    pub fn login_failed(&mut self, now: Instant, account: &[u8; 32]) -> Duration {
        let limit = self.config.login_failures_before_lockout;
        let lockout = self.config.lockout;
        let f = self.failures.entry(*account).or_insert(Failures {
            count: 0,
            locked_until: None,
            last: now,
        });
        if f.locked_until.is_some_and(|t| t <= now) {
            // A lockout that has run out starts a fresh count.
            f.count = 0;
            f.locked_until = None;
        }
        f.count += 1;
        f.last = now;
        if f.count >= limit {
            f.locked_until = Some(now + lockout);
        }
        let exp = f.count.saturating_sub(1).min(4);
        Duration::from_millis(250 << exp)
    }

    /// A successful login clears the account's failures.
    pub fn login_succeeded(&mut self, account: &[u8; 32]) {
        self.failures.remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn burst_then_limited_with_retry_after_then_refills() {
        let mut l = Limits::new(LimitsConfig::default());
        let t0 = Instant::now();
        for _ in 0..30 {
            assert_eq!(
                l.check(t0, ip("203.0.113.7"), Class::Signal),
                Decision::Allow
            );
        }
        let Decision::Limited { retry_after } = l.check(t0, ip("203.0.113.7"), Class::Signal)
        else {
            panic!("the 31st is limited");
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        // Another source is not affected.
        assert_eq!(
            l.check(t0, ip("203.0.113.8"), Class::Signal),
            Decision::Allow
        );
        // Half a second later one token (2/s) is back.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(
            l.check(t1, ip("203.0.113.7"), Class::Signal),
            Decision::Allow
        );
        assert!(matches!(
            l.check(t1, ip("203.0.113.7"), Class::Signal),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn ipv6_sources_share_their_64_and_mapped_v4_is_v4() {
        let mut l = Limits::new(LimitsConfig::default());
        let t0 = Instant::now();
        for i in 0..30 {
            let a = ip(&format!("2001:db8:1:2::{:x}", i + 1));
            assert_eq!(l.check(t0, a, Class::Page), Decision::Allow);
        }
        assert!(matches!(
            l.check(t0, ip("2001:db8:1:2:ffff::1"), Class::Page),
            Decision::Limited { .. }
        ));
        assert_eq!(
            l.check(t0, ip("2001:db8:1:3::1"), Class::Page),
            Decision::Allow
        );
        assert_eq!(
            SourceKey::from(ip("::ffff:198.51.100.1")),
            SourceKey::from(ip("198.51.100.1"))
        );
    }

    #[test]
    fn global_limit_engages_across_sources() {
        let config = LimitsConfig {
            global: [
                (Class::Page, Rate::new(1.0, 5.0)),
                (Class::Signal, Rate::new(1.0, 5.0)),
                (Class::Login, Rate::new(1.0, 5.0)),
                (Class::Api, Rate::new(1.0, 5.0)),
            ],
            ..LimitsConfig::default()
        };
        let mut l = Limits::new(config);
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(
                l.check(t0, ip(&format!("198.51.100.{i}")), Class::Login),
                Decision::Allow
            );
        }
        assert!(matches!(
            l.check(t0, ip("198.51.100.99"), Class::Login),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn lockout_after_failures_and_its_expiry() {
        let mut l = Limits::new(LimitsConfig::default());
        let acct = [1u8; 32];
        let t0 = Instant::now();
        let delays: Vec<_> = (0..5).map(|_| l.login_failed(t0, &acct)).collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert!(
            delays.windows(2).all(|w| w[1] >= w[0]),
            "progressive: {delays:?}"
        );
        assert!(l.is_locked(t0, &acct));
        assert!(!l.is_locked(t0, &[2u8; 32]), "other accounts unaffected");
        let later = t0 + Duration::from_secs(15 * 60);
        assert!(!l.is_locked(later, &acct), "the lockout expires");
        l.login_failed(later, &acct);
        assert!(!l.is_locked(later, &acct), "and the count starts afresh");
        l.login_succeeded(&acct);
        assert!(!l.is_locked(later, &acct));
    }

    #[test]
    fn concurrent_connections_per_source_are_capped() {
        let mut l = Limits::new(LimitsConfig {
            max_connections_per_source: 2,
            ..LimitsConfig::default()
        });
        assert!(l.connection_opened(ip("192.0.2.9")));
        assert!(l.connection_opened(ip("192.0.2.9")));
        assert!(!l.connection_opened(ip("192.0.2.9")));
        assert!(l.connection_opened(ip("192.0.2.10")));
        l.connection_closed(ip("192.0.2.9"));
        assert!(l.connection_opened(ip("192.0.2.9")));
    }

    #[test]
    fn prune_forgets_idle_sources() {
        let mut l = Limits::new(LimitsConfig::default());
        let t0 = Instant::now();
        l.check(t0, ip("192.0.2.1"), Class::Api);
        assert_eq!(l.sources.len(), 1);
        l.prune(t0 + Duration::from_secs(60));
        assert!(l.sources.is_empty());
    }
}
