//! Store throughput with sealing on and off: creating a consultation (one
//! durable transaction with its audit entry) and the join lookup a patient's
//! link triggers (keyed hash, select, open, checks).
//!
//! `cargo bench --bench store` measures; under `cargo test` (no `--bench`
//! argument) it is a quick smoke run. "Sealing off" is the `bench-plaintext`
//! feature's null sealer, which only benches and tests can build.

use std::time::Instant;

use telenode::store::{Consultation, DoctorId, MasterKey, SqliteStore, Store};
use telenode_signaling::msg::State;

/// Target: sealing costs less than this fraction of throughput.
const TARGET_OVERHEAD: f64 = 0.20;

struct Sizes {
    rounds: usize,
    creates: usize,
    lookups: usize,
}

fn consultation(doctor: DoctorId, n: u64) -> Consultation {
    Consultation {
        id: format!("bench-{n:016x}"),
        doctor,
        token_hash: rand::random(),
        state: State::Created,
        created_at: 1_750_000_000,
        expires_at: 1_750_014_400,
    }
}

/// Ops/s of (create, join lookup) on a fresh store.
fn run(store: &SqliteStore, sizes: &Sizes) -> anyhow::Result<(f64, f64)> {
    let doctor = store.add_doctor("bench", "Dr. Bench", "$argon2id$bench", 0)?;
    let mut tokens = Vec::with_capacity(sizes.creates);
    let started = Instant::now();
    for n in 0..sizes.creates {
        let c = consultation(doctor, n as u64);
        store.add_consultation(&c)?;
        tokens.push(c.token_hash);
    }
    let create = sizes.creates as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for i in 0..sizes.lookups {
        let token = &tokens[(i * 7919) % tokens.len()];
        let found = store.consultation_by_token(token)?;
        anyhow::ensure!(found.is_some(), "lookup failed");
    }
    let lookup = sizes.lookups as f64 / started.elapsed().as_secs_f64();
    Ok((create, lookup))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes = if bench {
        Sizes {
            rounds: 5,
            creates: 500,
            lookups: 20_000,
        }
    } else {
        Sizes {
            rounds: 1,
            creates: 30,
            lookups: 300,
        }
    };
    let (mut sealed, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..sizes.rounds {
        // Alternate so that disk and CPU drift hit both alike.
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open_with_key(dir.path(), &MasterKey::from_bytes(rand::random()))?;
        sealed.push(run(&store, &sizes)?);
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open_plaintext_for_bench(dir.path())?;
        plain.push(run(&store, &sizes)?);
    }
    let pick = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(v.iter().map(f).collect());
    println!(
        "store operations per second (median of {} rounds; {} creates, {} lookups each; \
         SQLite WAL, synchronous=FULL)",
        sizes.rounds, sizes.creates, sizes.lookups
    );
    println!(
        "{:<22} {:>12} {:>14} {:>9}",
        "operation", "sealed", "sealing off", "overhead"
    );
    let mut worst = 0.0f64;
    for (name, f) in [
        (
            "create consultation",
            (|x: &(f64, f64)| x.0) as fn(&(f64, f64)) -> f64,
        ),
        ("join lookup", |x: &(f64, f64)| x.1),
    ] {
        let (s, p) = (pick(&sealed, f), pick(&plain, f));
        let overhead = p / s - 1.0;
        worst = worst.max(overhead);
        println!("{name:<22} {s:>12.0} {p:>14.0} {:>8.1}%", overhead * 100.0);
    }
    if bench {
        println!(
            "target: overhead under {:.0}% - {}",
            TARGET_OVERHEAD * 100.0,
            if worst < TARGET_OVERHEAD {
                "met"
            } else {
                "NOT met"
            }
        );
    } else {
        println!(
            "(smoke run of a debug build, cold caches: not a measurement; \
             `cargo bench --bench store` measures)"
        );
    }
    Ok(())
}
