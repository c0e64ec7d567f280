//! The doctor API (JSON over HTTPS): log in, create, list and end one's own
//! consultations. Clients get a short uniform error; the cause goes to the log.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use telenode_signaling::msg::State;

use super::hub::HubCmd;
use super::{AppState, unix_now};
use crate::auth;
use crate::store::{AuditEvent, Consultation, DoctorId, StoreError};

/// An API failure as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
}

impl ApiError {
    const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        ApiError {
            status,
            code,
            message,
        }
    }
    const BAD_CREDENTIALS: ApiError = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "bad_credentials",
        "login or password is wrong",
    );
    const UNAUTHENTICATED: ApiError = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "a valid session is required",
    );
    const NOT_FOUND: ApiError =
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such consultation");
    const INTERNAL: ApiError = ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    );
    fn bad_request(message: &'static str) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store");
        ApiError::INTERNAL
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::INTERNAL)?
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    login: String,
    password: String,
}

#[derive(Debug, Serialize)]
pub struct LoginResponse {
    session: String,
    expires_at: i64,
    display_name: String,
}

pub async fn login(
    AxState(app): AxState<Arc<AppState>>,
    Json(req): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if req.login.len() > 256 || req.password.len() > 1024 {
        return Err(ApiError::BAD_CREDENTIALS);
    }
    let store = app.store.clone();
    let metrics = app.metrics.clone();
    let ttl = app.config.session_ttl_secs as i64;
    let account = throttle_key(&req.login);
    let locked = app.limiter().is_locked(std::time::Instant::now(), &account);
    let result = blocking(move || {
        let doctor = store.doctor_by_login(&req.login)?;
        // A locked account answers exactly like a wrong password, after the
        // same work, so the lockout says nothing about the account.
        let usable = doctor.as_ref().filter(|d| !d.disabled && !locked);
        let ok = auth::verify_password(usable.map(|d| d.password_hash.as_str()), &req.password);
        metrics.login(ok && usable.is_some());
        let Some(doctor) = usable.filter(|_| ok) else {
            tracing::info!("failed login");
            let event = AuditEvent::LoginFailed {
                doctor: doctor.as_ref().map(|d| d.id),
            };
            store.record(&event, unix_now())?;
            return Err(ApiError::BAD_CREDENTIALS);
        };
        let (session, hash) = auth::new_session_token();
        let expires_at = unix_now() + ttl;
        store.add_session(&hash, doctor.id, expires_at)?;
        store.record(&AuditEvent::Login { doctor: doctor.id }, unix_now())?;
        tracing::info!("doctor logged in");
        Ok(Json(LoginResponse {
            session,
            expires_at,
            display_name: doctor.display_name.clone(),
        }))
    })
    .await;
    let now = std::time::Instant::now();
    match &result {
        Ok(_) => app.limiter().login_succeeded(&account),
        Err(e) if e.code == ApiError::BAD_CREDENTIALS.code => {
            let delay = app.limiter().login_failed(now, &account);
            // Progressive delay: guessing gets slower with every failure.
            tokio::time::sleep(delay).await;
        }
        Err(_) => {}
    }
    result
}

/// The key under which failed logins of one account are counted: a hash, so
/// the limiter never holds login names.
fn throttle_key(login: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"telenode/v1/login-throttle|");
    h.update(login.trim().to_lowercase().as_bytes());
    h.finalize().into()
}

/// The doctor behind the request's bearer session.
async fn doctor(app: &AppState, headers: &HeaderMap) -> Result<(DoctorId, [u8; 32]), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::UNAUTHENTICATED)?;
    let hash = auth::session_hash(token);
    let store = app.store.clone();
    let id = blocking(move || Ok(store.session_doctor(&hash, unix_now())?)).await?;
    id.map(|id| (id, hash)).ok_or(ApiError::UNAUTHENTICATED)
}

pub async fn logout(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (_, hash) = doctor(&app, &headers).await?;
    let store = app.store.clone();
    blocking(move || Ok(store.delete_session(&hash)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub struct ConsultationView {
    id: String,
    state: State,
    created_at: i64,
    expires_at: i64,
}

impl From<&Consultation> for ConsultationView {
    fn from(c: &Consultation) -> Self {
        ConsultationView {
            id: c.id.clone(),
            state: c.state,
            created_at: c.created_at,
            expires_at: c.expires_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// base64url of the 32-byte `token_hash` (PROTOCOL.md).
    token_hash: String,
    /// Lifetime of the link in seconds; at most the node's configured default.
    ttl_secs: Option<u64>,
}

pub async fn create(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    Json(req): Json<CreateRequest>,
) -> Result<(StatusCode, Json<ConsultationView>), ApiError> {
    let (doctor, _) = doctor(&app, &headers).await?;
    let token_hash: [u8; 32] = telenode_signaling::creds::decode_token(&req.token_hash)
        .ok_or_else(|| ApiError::bad_request("token_hash must be 32 bytes, base64url"))?;
    let max = app.config.consultation_ttl_secs;
    let ttl = req.ttl_secs.unwrap_or(max);
    if ttl == 0 || ttl > max {
        return Err(ApiError::bad_request("ttl_secs out of range"));
    }
    let now = unix_now();
    let c = Consultation {
        id: auth::b64u(&auth::random_bytes::<16>()),
        doctor,
        token_hash,
        state: State::Created,
        created_at: now,
        expires_at: now + ttl as i64,
    };
    let store = app.store.clone();
    let view = ConsultationView::from(&c);
    blocking(move || match store.add_consultation(&c) {
        Err(StoreError::DuplicateToken) => {
            Err(ApiError::bad_request("this token is already in use"))
        }
        r => Ok(r?),
    })
    .await?;
    app.metrics.consultation_created();
    tracing::info!(consultation = %super::hub::log_tag(&view.id), "consultation created");
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Vec<ConsultationView>>, ApiError> {
    let (doctor, _) = doctor(&app, &headers).await?;
    let store = app.store.clone();
    let all = blocking(move || Ok(store.consultations_of(doctor)?)).await?;
    Ok(Json(all.iter().map(ConsultationView::from).collect()))
}

/// One of the doctor's own consultations; someone else's is "not found",
/// exactly like one that does not exist.
async fn own(app: &AppState, doctor: DoctorId, id: String) -> Result<Consultation, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::NOT_FOUND);
    }
    let store = app.store.clone();
    blocking(move || Ok(store.consultation(&id)?))
        .await?
        .filter(|c| c.doctor == doctor)
        .ok_or(ApiError::NOT_FOUND)
}

pub async fn get(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConsultationView>, ApiError> {
    let (doctor, _) = doctor(&app, &headers).await?;
    let c = own(&app, doctor, id).await?;
    Ok(Json(ConsultationView::from(&c)))
}

pub async fn end(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConsultationView>, ApiError> {
    let (doctor, _) = doctor(&app, &headers).await?;
    let mut c = own(&app, doctor, id).await?;
    if !c.state.is_terminal() {
        let store = app.store.clone();
        let cid = c.id.clone();
        blocking(move || Ok(store.set_consultation_state(&cid, State::Ended, unix_now())?)).await?;
        app.hub.send(HubCmd::End {
            consultation: c.id.clone(),
        });
        c.state = State::Ended;
    }
    Ok(Json(ConsultationView::from(&c)))
}
