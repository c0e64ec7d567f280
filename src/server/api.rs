//! The doctor API (JSON over HTTPS): log in, create, list and end one's own
//! consultations. Clients get a short uniform error; the cause goes to the log.

use std::sync::Arc;

use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
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
        "login, password or code is wrong",
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

/// A sign-in: password and second factor in one request, so that nothing
/// tells a caller which of them was wrong. `code` is the current TOTP code
/// (6 digits) or one of the account's recovery codes. A WebAuthn assertion
/// would come as another optional field beside `code`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    login: String,
    password: String,
    #[serde(default)]
    code: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginRequest")
    }
}

/// Checks the second factor of an account whose password was right:
/// a TOTP code not used before, or an unused recovery code (used up now).
fn second_factor_ok(
    store: &dyn crate::store::Store,
    doctor: &crate::store::Doctor,
    code: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let Some(factor) = &doctor.second_factor else {
        tracing::warn!("sign-in refused: the account has no second factor (admin doctor reset)");
        return Ok(false);
    };
    let digits = code.chars().filter(|c| !c.is_whitespace()).count();
    if digits == crate::totp::DIGITS as usize {
        return match crate::totp::verify(
            &factor.totp_secret,
            code,
            now.max(0) as u64,
            factor.totp_last_step,
        ) {
            Some(step) => store.consume_totp_step(doctor.id, step),
            None => Ok(false),
        };
    }
    if code.len() > 64 || code.is_empty() {
        return Ok(false);
    }
    store.consume_recovery_code(doctor.id, &auth::recovery_hash(code), now)
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
    if req.login.len() > 256 || req.password.len() > 1024 || req.code.len() > 64 {
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
        let password_ok =
            auth::verify_password(usable.map(|d| d.password_hash.as_str()), &req.password);
        let ok = match usable {
            Some(d) if password_ok => second_factor_ok(store.as_ref(), d, &req.code, unix_now())?,
            _ => false,
        };
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
        let now = unix_now();
        let expires_at = now + ttl;
        store.start_session(&hash, doctor.id, now, expires_at)?;
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

/// The signed-in doctor of a request, found once by the session layer
/// ([`session`] or [`session_rotating`]) and read by the handlers.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn {
    doctor: DoctorId,
    /// The session the request presented.
    presented: [u8; 32],
}

/// The doctor of a request whose session the layer found; 401 otherwise.
fn signed_in(s: Option<Extension<SignedIn>>) -> Result<SignedIn, ApiError> {
    s.map(|Extension(s)| s).ok_or(ApiError::UNAUTHENTICATED)
}

/// Response header carrying a rotated session token.
pub const SESSION_HEADER: &str = "x-telenode-session";

/// How long a session token stays valid after it was rotated, for requests
/// already on their way with it (a quarter of the lifetime if that is less).
pub const ROTATION_GRACE_SECS: i64 = 60;

fn rotation_grace(ttl: i64) -> i64 {
    ROTATION_GRACE_SECS.min(ttl / 4)
}

/// Whether a session should be replaced: past half its lifetime, and not
/// itself an old token in its grace period (`ttl`: sessions' configured
/// lifetime).
pub fn due_for_rotation(created_at: i64, expires_at: i64, now: i64, ttl: i64) -> bool {
    now >= created_at + (expires_at - created_at) / 2 && expires_at - now > rotation_grace(ttl)
}

/// Middleware: finds the request's bearer session (one store lookup) and
/// hands the doctor to the handler.
pub async fn session(
    AxState(app): AxState<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    with_session(&app, request, next, false).await
}

/// Middleware: like [`session`]; in addition, a session past half its
/// lifetime is replaced by a fresh one (same doctor, full lifetime), sent in
/// the `x-telenode-session` response header, and the presented token ends
/// after a short grace period.
pub async fn session_rotating(
    AxState(app): AxState<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    with_session(&app, request, next, true).await
}

async fn with_session(
    app: &AppState,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
    rotate: bool,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = token else {
        return next.run(request).await;
    };
    let store = app.store.clone();
    let idle = app.config.session_idle_secs as i64;
    let ttl = app.config.session_ttl_secs as i64;
    let found = blocking(move || {
        let presented = auth::session_hash(&token);
        let now = unix_now();
        let Some(s) = store.session(&presented, now, idle)? else {
            return Ok(None);
        };
        let signed_in = SignedIn {
            doctor: s.doctor,
            presented,
        };
        if !rotate || !due_for_rotation(s.created_at, s.expires_at, now, ttl) {
            return Ok(Some((signed_in, None)));
        }
        let (fresh, fresh_hash) = auth::new_session_token();
        store.rotate_session(
            &presented,
            &fresh_hash,
            now,
            now + ttl,
            now + rotation_grace(ttl),
        )?;
        tracing::debug!("session rotated");
        Ok(Some((signed_in, Some(fresh))))
    })
    .await;
    let fresh = match found {
        Ok(Some((signed_in, fresh))) => {
            request.extensions_mut().insert(signed_in);
            fresh
        }
        Ok(None) => None,
        Err(e) => return e.into_response(),
    };
    let mut response = next.run(request).await;
    if let Some(fresh) = fresh
        && let Ok(v) = header::HeaderValue::from_str(&fresh)
    {
        response.headers_mut().insert(SESSION_HEADER, v);
    }
    response
}

pub async fn logout(
    AxState(app): AxState<Arc<AppState>>,
    session: Option<Extension<SignedIn>>,
) -> Result<StatusCode, ApiError> {
    let hash = signed_in(session)?.presented;
    let store = app.store.clone();
    blocking(move || Ok(store.delete_session(&hash)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_past_half_life_and_not_again_in_the_grace_period() {
        // 12 h session created at 0.
        let (c, e, ttl) = (0, 43_200, 43_200);
        assert!(!due_for_rotation(c, e, 21_599, ttl));
        assert!(due_for_rotation(c, e, 21_600, ttl));
        // The old token, shortened to now + 60 s, is not rotated again.
        let now = 30_000;
        for t in now..now + 60 {
            assert!(!due_for_rotation(c, now + rotation_grace(ttl), t, ttl));
        }
        // A short session gets a proportionally short grace.
        assert_eq!(rotation_grace(8), 2);
        assert!(due_for_rotation(0, 8, 4, 8));
        assert!(!due_for_rotation(0, 6, 5, 8));
    }
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
    session: Option<Extension<SignedIn>>,
    Json(req): Json<CreateRequest>,
) -> Result<(StatusCode, Json<ConsultationView>), ApiError> {
    let doctor = signed_in(session)?.doctor;
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
    session: Option<Extension<SignedIn>>,
) -> Result<Json<Vec<ConsultationView>>, ApiError> {
    let doctor = signed_in(session)?.doctor;
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
    session: Option<Extension<SignedIn>>,
    Path(id): Path<String>,
) -> Result<Json<ConsultationView>, ApiError> {
    let doctor = signed_in(session)?.doctor;
    let c = own(&app, doctor, id).await?;
    Ok(Json(ConsultationView::from(&c)))
}

pub async fn end(
    AxState(app): AxState<Arc<AppState>>,
    session: Option<Extension<SignedIn>>,
    Path(id): Path<String>,
) -> Result<Json<ConsultationView>, ApiError> {
    let doctor = signed_in(session)?.doctor;
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
