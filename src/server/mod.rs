//! `telenode serve`: HTTPS (or plain HTTP on loopback), the doctor API, the
//! signalling WebSocket and the embedded patient page.

pub mod api;
pub mod hub;
pub mod tls;
pub mod web;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use telenode_signaling::room::RoomConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::store::{Store, UnixTime};
use hub::Hub;

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Shared, read-only state of the running node.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub hub: Hub,
    pub assets: web::Assets,
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

pub fn unix_time() -> UnixTime {
    unix_now()
}

pub(crate) fn unix_now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Builds the HTTP routes.
pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(web::healthz))
        .route("/c/{token}", get(web::patient_page))
        .route("/static/{name}", get(web::static_file))
        .route("/ws", get(ws::upgrade))
        .route("/api/v1/login", post(api::login))
        .route("/api/v1/logout", post(api::logout))
        .route("/api/v1/consultations", get(api::list).post(api::create))
        .route("/api/v1/consultations/{id}", get(api::get))
        .route("/api/v1/consultations/{id}/end", post(api::end))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            web::security_headers,
        ))
        .with_state(app)
}

/// A node running in this process.
#[derive(Debug)]
pub struct Running {
    /// Where it listens (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets open requests finish (up to `grace`) and returns.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(grace, self.task).await;
    }

    /// Waits until the server stops on its own (it does not, unless it fails).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task")??;
        Ok(())
    }

    /// A handle that asks the server to stop.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Binds the listener and starts serving.
pub async fn start(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Running> {
    let room_config = RoomConfig {
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        ..RoomConfig::default()
    };
    let hub = Hub::spawn(store.clone(), room_config);
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(tls::server_config(c, k)?),
        _ => None,
    };
    let tcp = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen: binding {}", config.listen))?;
    let addr = tcp.local_addr()?;
    let app = Arc::new(AppState {
        config,
        store,
        hub,
        assets: web::Assets::load(),
    });
    let routes = router(app).into_make_service();
    let (shutdown, mut rx) = watch::channel(false);
    let signal = async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let task = match tls {
        Some(cfg) => {
            let listener = tls::TlsListener::new(tcp, cfg)?;
            tokio::spawn(async move {
                axum::serve(listener, routes)
                    .with_graceful_shutdown(signal)
                    .await
            })
        }
        None => tokio::spawn(async move {
            axum::serve(tcp, routes)
                .with_graceful_shutdown(signal)
                .await
        }),
    };
    Ok(Running {
        addr,
        shutdown,
        task,
    })
}
