//! The signalling WebSocket: authenticate the first message, then shuttle
//! frames between the socket and the hub.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State as AxState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use telenode_signaling::creds;
use telenode_signaling::msg::{self, ClientMsg, ErrorCode, Hello, ServerMsg};
use telenode_signaling::room::{ConnId, Seat};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::AppState;
use super::hub::{HubCmd, OUTGOING_QUEUE, Outgoing, log_tag};
use crate::store::Consultation;

/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

pub async fn upgrade(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<super::ClientAddr>,
    AxState(app): AxState<Arc<AppState>>,
) -> Response {
    if !same_origin(&headers) {
        tracing::info!("WebSocket from a foreign origin refused");
        return StatusCode::FORBIDDEN.into_response();
    }
    let source = client.0.ip();
    if !app.limiter().connection_opened(source) {
        app.metrics.rate_limited(super::limits::Class::Signal);
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "10")]).into_response();
    }
    let on_fail = app.clone();
    ws.max_message_size(msg::MAX_FRAME_BYTES)
        .max_frame_size(msg::MAX_FRAME_BYTES)
        .read_buffer_size(4096)
        .on_failed_upgrade(move |_| on_fail.limiter().connection_closed(source))
        .on_upgrade(move |socket| async move {
            let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
            connection(socket, app.clone(), conn)
                .instrument(tracing::info_span!("ws", conn = conn.0))
                .await;
            app.limiter().connection_closed(source);
        })
}

/// Browsers always send `Origin`; it must name this node (no cross-site
/// WebSocket hijacking). Native clients send none.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

fn error(code: ErrorCode) -> ServerMsg {
    ServerMsg::Error {
        code,
        message: code.default_message().to_owned(),
    }
}

async fn send(socket: &mut WebSocket, m: &ServerMsg) -> bool {
    socket
        .send(Message::Text(msg::encode_server(m).into()))
        .await
        .is_ok()
}

/// Sends a fatal error and closes.
async fn refuse(app: &AppState, mut socket: WebSocket, code: ErrorCode) {
    app.metrics.refused(code);
    let _ = send(&mut socket, &error(code)).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 4000,
            reason: code.as_str().into(),
        })))
        .await;
}

/// Reads one text frame and decodes it; protocol errors become error codes.
fn decode(message: Message) -> Result<Option<ClientMsg>, ErrorCode> {
    match message {
        Message::Text(t) => msg::decode_client(t.as_str())
            .map(Some)
            .map_err(|e| e.code()),
        Message::Binary(_) => Err(ErrorCode::BadRequest),
        Message::Ping(_) | Message::Pong(_) => Ok(None),
        Message::Close(_) => Err(ErrorCode::BadRequest),
    }
}

async fn connection(socket: WebSocket, app: Arc<AppState>, conn: ConnId) {
    app.metrics.connection_opened();
    serve_connection(socket, &app, conn).await;
    app.metrics.connection_closed();
}

async fn serve_connection(mut socket: WebSocket, app: &Arc<AppState>, conn: ConnId) {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(m))) => decode(m),
        _ => return,
    };
    let hello = match hello {
        Ok(Some(ClientMsg::Hello(h))) => h,
        Ok(_) => return refuse(app, socket, ErrorCode::BadRequest).await,
        Err(code) => return refuse(app, socket, code).await,
    };
    let started = std::time::Instant::now();
    let authenticated = authenticate(app, hello).await;
    app.metrics.store_op(started.elapsed());
    let (consultation, seat) = match authenticated {
        Ok(v) => v,
        Err(code) => {
            tracing::info!(code = code.as_str(), "refused");
            return refuse(app, socket, code).await;
        }
    };
    tracing::info!(consultation = %log_tag(&consultation.id), "joined");

    // Fresh TURN credentials for this seat only, valid until the
    // consultation's end; the id in the username is random.
    let ice_servers = match &app.ice {
        Some(ice) => ice.servers(
            super::unix_now().max(0) as u64,
            consultation.expires_at.max(0) as u64,
        ),
        None => Vec::new(),
    };
    let (tx, mut rx) = mpsc::channel(OUTGOING_QUEUE);
    app.hub.send(HubCmd::Join {
        conn,
        consultation: consultation.id.clone(),
        stored_state: consultation.state,
        expires_at: consultation.expires_at,
        seat,
        ice_servers,
        tx,
    });

    loop {
        tokio::select! {
            // What the client said is handled before what it is told: a
            // goodbye already received must reach the other seat even when
            // writing to this client fails next.
            biased;
            inc = socket.recv() => match inc {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(m)) => match decode(m) {
                    Ok(Some(msg)) => app.hub.send(HubCmd::Message { conn, msg }),
                    Ok(None) => {}
                    Err(code) => {
                        tracing::info!(code = code.as_str(), "bad frame");
                        app.hub.send(HubCmd::Closed { conn });
                        return refuse(app, socket, code).await;
                    }
                },
            },
            out = rx.recv() => match out {
                Some(Outgoing::Msg(m)) => {
                    if !send(&mut socket, &m).await {
                        // The client is gone or going; what it sent before
                        // still counts.
                        drain_incoming(app, &mut socket, conn).await;
                        break;
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
                Some(Outgoing::GoingAway) => {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: axum::extract::ws::close_code::RESTART,
                            reason: "node restarting, reconnect".into(),
                        })))
                        .await;
                    return;
                }
            },
        }
    }
    app.hub.send(HubCmd::Closed { conn });
}

/// How long frames already on their way are still read from a connection
/// whose writing side failed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Hands the hub the frames a client sent before its connection broke.
async fn drain_incoming(app: &AppState, socket: &mut WebSocket, conn: ConnId) {
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(Ok(m)) = socket.recv().await {
            if let Ok(Some(msg)) = decode(m) {
                app.hub.send(HubCmd::Message { conn, msg });
            }
        }
    })
    .await;
}

/// Checks the credentials of a hello and picks the seat. Every failure of a
/// patient token is the same `bad_token`; every failure of a doctor is the
/// same `forbidden`.
async fn authenticate(app: &AppState, hello: Hello) -> Result<(Consultation, Seat), ErrorCode> {
    let store = app.store.clone();
    let now = super::unix_now();
    match hello {
        Hello::Patient { token, resume } => {
            let raw = creds::decode_token(&token).ok_or(ErrorCode::BadToken)?;
            let hash = creds::token_hash(&raw);
            let found = tokio::task::spawn_blocking(move || store.consultation_by_token(&hash))
                .await
                .map_err(|_| ErrorCode::BadToken)?
                .map_err(|e| {
                    tracing::error!(error = %e, "token lookup");
                    ErrorCode::BadToken
                })?;
            match found {
                Some(c)
                    if creds::ct_eq(&c.token_hash, &hash)
                        && !c.state.is_terminal()
                        && c.expires_at > now =>
                {
                    Ok((c, Seat::Patient { resume }))
                }
                _ => Err(ErrorCode::BadToken),
            }
        }
        Hello::Doctor {
            consultation,
            session,
        } => {
            let hash = crate::auth::session_hash(&session);
            let idle = app.config.session_idle_secs as i64;
            let found = tokio::task::spawn_blocking(move || {
                let doctor = store.session(&hash, now, idle)?.map(|s| s.doctor);
                let c = store.consultation(&consultation)?;
                Ok::<_, crate::store::StoreError>((doctor, c))
            })
            .await
            .map_err(|_| ErrorCode::Forbidden)?
            .map_err(|e| {
                tracing::error!(error = %e, "doctor lookup");
                ErrorCode::Forbidden
            })?;
            match found {
                (Some(doctor), Some(c)) if c.doctor == doctor => Ok((c, Seat::Doctor)),
                _ => Err(ErrorCode::Forbidden),
            }
        }
    }
}
