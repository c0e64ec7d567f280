//! `telenode serve`: HTTPS (or plain HTTP on loopback), the doctor API, the
//! signalling WebSocket and the embedded patient page.

pub mod acme;
pub mod api;
pub mod hub;
pub mod legal;
pub mod limits;
pub mod metrics;
pub mod retention;
pub mod tls;
pub mod web;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use telenode_signaling::room::RoomConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::store::{Store, UnixTime};
use hub::Hub;

/// Longest time a request may take before it is answered with 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Shared, read-only state of the running node.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub hub: Hub,
    pub assets: web::Assets,
    pub legal: legal::LegalPages,
    pub metrics: Arc<metrics::Metrics>,
    pub limits: std::sync::Mutex<limits::Limits>,
    /// Mints STUN/TURN servers with fresh credentials for `welcome`; `None`
    /// when TURN is off.
    pub ice: Option<crate::turn::ice::IceProvider>,
    /// The listener's certificate when it comes from ACME (not ready until
    /// the first one is obtained).
    pub acme_cert: Option<Arc<tls::CertResolver>>,
}

impl AppState {
    /// The limiter, locked (briefly; never held across an await).
    pub fn limiter(&self) -> std::sync::MutexGuard<'_, limits::Limits> {
        self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the rate limiter about one request.
    pub fn limit(&self, source: std::net::IpAddr, class: limits::Class) -> limits::Decision {
        self.limiter()
            .check(std::time::Instant::now(), source, class)
    }
}

/// The address a connection comes from (for rate limits only; never logged
/// or stored).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
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
        .route("/legal/{page}", get(web::legal_page))
        .route("/ws", get(ws::upgrade))
        .route("/api/v1/login", post(api::login))
        .merge(
            Router::new()
                .route("/api/v1/logout", post(api::logout))
                .layer(axum::middleware::from_fn_with_state(
                    app.clone(),
                    api::session,
                )),
        )
        .merge(
            Router::new()
                .route("/api/v1/consultations", get(api::list).post(api::create))
                .route("/api/v1/consultations/{id}", get(api::get))
                .route("/api/v1/consultations/{id}/end", post(api::end))
                .layer(axum::middleware::from_fn_with_state(
                    app.clone(),
                    api::session_rotating,
                )),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A request that has not been answered in time gets 408; WebSocket
        // sessions are not requests once upgraded and are unaffected.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            web::rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            web::security_headers,
        ))
        .with_state(app)
}

/// A node running in this process.
#[derive(Debug)]
pub struct Running {
    /// Where the public listener listens (the real port when the config asked
    /// for port 0).
    pub addr: SocketAddr,
    /// Where the operations listener listens.
    pub admin_addr: SocketAddr,
    app: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    admin_task: tokio::task::JoinHandle<std::io::Result<()>>,
    hub_task: tokio::task::JoinHandle<()>,
    turn: Option<crate::turn::TurnHandle>,
}

/// How long a graceful shutdown may take before the node exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Running {
    /// Where the embedded TURN relay listens (UDP; TCP on the same port),
    /// if it runs.
    pub fn turn_addr(&self) -> Option<SocketAddr> {
        self.turn.as_ref().map(|t| t.udp_addr)
    }

    /// Graceful shutdown: report not-ready, close every signalling connection
    /// with "service restart" (clients reconnect; their media is peer to peer
    /// and keeps flowing), stop accepting, let open requests and the hub's
    /// store writes finish, all within `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.app.metrics.set_draining();
        self.app.hub.send(hub::HubCmd::Shutdown);
        let _ = self.shutdown.send(true);
        let all = async {
            let _ = self.hub_task.await;
            let _ = self.task.await;
            let _ = self.admin_task.await;
            if let Some(turn) = self.turn {
                turn.shutdown().await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("shutdown took longer than {grace:?}; exiting anyway");
        }
    }

    /// Serves until `stop` resolves (e.g. SIGTERM), then shuts down
    /// gracefully; returns early with an error if a listener fails.
    pub async fn serve_until(
        mut self,
        stop: impl std::future::Future<Output = ()>,
        grace: Duration,
    ) -> anyhow::Result<()> {
        tokio::select! {
            r = &mut self.task => {
                r.context("server task")?.context("public listener")?;
                anyhow::bail!("the public listener stopped");
            }
            r = &mut self.admin_task => {
                r.context("admin task")?.context("operations listener")?;
                anyhow::bail!("the operations listener stopped");
            }
            () = stop => {}
        }
        tracing::info!("shutting down");
        self.shutdown(grace).await;
        Ok(())
    }
}

/// The operations listener: liveness, readiness and metrics. Separate from
/// the public listener and on loopback by default.
pub fn admin_router(app: Arc<AppState>) -> Router {
    async fn readyz(
        axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    ) -> (StatusCode, &'static str) {
        if app.metrics.is_draining() {
            return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        }
        if app.acme_cert.as_ref().is_some_and(|c| !c.has_certificate()) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "waiting for the ACME certificate",
            );
        }
        let store = app.store.clone();
        let started = std::time::Instant::now();
        let ok = tokio::task::spawn_blocking(move || store.consultation("readiness-probe").is_ok())
            .await
            .unwrap_or(false);
        app.metrics.store_op(started.elapsed());
        if ok {
            (StatusCode::OK, "ready")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
    async fn metrics(
        axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    ) -> impl axum::response::IntoResponse {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            app.metrics.render(),
        )
    }
    Router::new()
        .route("/healthz", get(web::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// Binds the listeners and starts serving.
pub async fn start(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Running> {
    let limits_config = limits::LimitsConfig::default().scaled(config.rate_limit_scale);
    let room_config = RoomConfig {
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        ..RoomConfig::default()
    };
    let acme_settings = acme::AcmeSettings::from_config(&config);
    let provider = tls::provider();
    let (tls, acme_cert) = match (&config.tls_cert, &config.tls_key, &acme_settings) {
        (Some(c), Some(k), _) => (Some(tls::from_files(c, k)?), None),
        (_, _, Some(_)) => {
            let resolver = Arc::new(tls::CertResolver::default());
            let cfg = tls::server_config(provider.clone(), resolver.clone(), true)?;
            (Some(cfg), Some(resolver))
        }
        _ => (None, None),
    };
    let tcp = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen: binding {}", config.listen))?;
    let addr = tcp.local_addr()?;
    let admin_tcp = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("admin_listen: binding {}", config.admin_listen))?;
    let admin_addr = admin_tcp.local_addr()?;
    let metrics = Arc::new(metrics::Metrics::default());
    let turn_tls = tls.as_ref().map(|c| {
        // The node's certificate (and its reloads), without HTTP's ALPN.
        let mut c = c.clone();
        c.alpn_protocols.clear();
        Arc::new(c)
    });
    let (turn, ice) = crate::turn::from_config(&config, vec![addr, admin_addr], turn_tls).await?;
    if let Some(t) = &turn {
        metrics.set_turn(t.metrics());
    }
    let (hub, hub_task) = Hub::spawn(store.clone(), room_config, metrics.clone());
    let assets = web::Assets::load();
    let legal = legal::LegalPages::load(
        config.legal_dir.as_deref(),
        &assets.sri_of("app.css").unwrap_or_default(),
    )?;
    let app = Arc::new(AppState {
        config,
        store,
        hub,
        assets,
        legal,
        metrics,
        limits: std::sync::Mutex::new(limits::Limits::new(limits_config)),
        ice,
        acme_cert: acme_cert.clone(),
    });
    let routes = router(app.clone()).into_make_service_with_connect_info::<ClientAddr>();
    let (shutdown, rx) = watch::channel(false);
    retention::spawn(app.store.clone(), app.config.retention_secs(), rx.clone());
    if let (Some(settings), Some(resolver)) = (acme_settings, acme_cert) {
        acme::spawn(settings, provider, resolver, rx.clone());
    }
    let signal = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let public_signal = signal(rx.clone());
    let task = match tls {
        Some(cfg) => {
            let listener = tls::TlsListener::new(tcp, cfg)?;
            tokio::spawn(async move {
                axum::serve(listener, routes)
                    .with_graceful_shutdown(public_signal)
                    .await
            })
        }
        None => tokio::spawn(async move {
            axum::serve(tcp, routes)
                .with_graceful_shutdown(public_signal)
                .await
        }),
    };
    let admin_routes = admin_router(app.clone()).into_make_service();
    let admin_signal = signal(rx);
    let admin_task = tokio::spawn(async move {
        axum::serve(admin_tcp, admin_routes)
            .with_graceful_shutdown(admin_signal)
            .await
    });
    Ok(Running {
        addr,
        admin_addr,
        app,
        shutdown,
        task,
        admin_task,
        hub_task,
        turn,
    })
}
