//! The retention task: every hour, deletes what is past the retention period
//! (`retention_days`) and scrubs it from the database files.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::Store;

/// How often the node purges; the first purge runs at start-up.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Starts the purge loop; it ends when `stop` turns true.
pub fn spawn(
    store: Arc<dyn Store>,
    retention_secs: i64,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let store = store.clone();
            let now = super::unix_now();
            match tokio::task::spawn_blocking(move || store.purge(now, retention_secs)).await {
                Ok(Ok(r)) if r.removed_anything() || r.unreadable > 0 => tracing::info!(
                    consultations = r.consultations,
                    sessions = r.sessions,
                    audit_entries = r.audit_entries,
                    unreadable = r.unreadable,
                    "retention purge"
                ),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "retention purge failed"),
                Err(e) => tracing::error!(error = %e, "retention purge task"),
            }
        }
    })
}
