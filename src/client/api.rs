//! HTTP client for the doctor API.

use std::sync::{Arc, RwLock};

use anyhow::Context;
use serde::Deserialize;
use telenode_signaling::creds;
use telenode_signaling::seal::LinkKey;

use super::Trust;
use crate::auth::{b64u, random_bytes};

/// A consultation as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsultationInfo {
    pub id: String,
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What the doctor's client made for a new consultation: the link to give
/// the patient and the secrets behind it, which never reach the node.
#[derive(Debug)]
pub struct PatientLink {
    pub consultation: ConsultationInfo,
    /// `BASE/c/<token>#<linkkey>`.
    pub url: String,
    pub link_key: LinkKey,
}

/// A doctor's session token, shared by the API client and the call agents
/// it starts: when the node rotates the session, everyone uses the new one.
#[derive(Clone, Default)]
pub struct SessionHandle(Arc<RwLock<String>>);

impl SessionHandle {
    pub fn new(token: impl Into<String>) -> SessionHandle {
        SessionHandle(Arc::new(RwLock::new(token.into())))
    }

    /// The current token.
    pub fn get(&self) -> String {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, token: String) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = token;
    }
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionHandle(***)")
    }
}

/// A logged-in doctor's API client.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    trust: Trust,
    session: SessionHandle,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}
#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// The node answered a request with an error status.
#[derive(Debug, thiserror::Error)]
pub struct HttpError {
    pub status: reqwest::StatusCode,
    /// The node's error code, when the answer carried one.
    pub code: Option<String>,
    /// The node's words for the error, when the answer carried them.
    pub message: Option<String>,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.message, &self.code) {
            (Some(message), Some(code)) => write!(f, "{message} ({code}, HTTP {})", self.status),
            _ => write!(f, "HTTP {}", self.status),
        }
    }
}

async fn check(res: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if res.status().is_success() {
        return Ok(res);
    }
    let status = res.status();
    let (code, message) = match res.json::<ErrorBody>().await {
        Ok(b) => (Some(b.error.code), Some(b.error.message)),
        Err(_) => (None, None),
    };
    Err(HttpError {
        status,
        code,
        message,
    }
    .into())
}

impl ApiClient {
    /// Signs in with login, password and `code`: the current code of the
    /// doctor's authenticator app, or one of their recovery codes.
    pub async fn login(
        trust: &Trust,
        base: &str,
        login: &str,
        password: &str,
        code: &str,
    ) -> anyhow::Result<ApiClient> {
        let base = base.trim_end_matches('/').to_owned();
        let http = trust.http_client()?;
        #[derive(Deserialize)]
        struct LoginResponse {
            session: String,
        }
        let res = http
            .post(format!("{base}/api/v1/login"))
            .json(&serde_json::json!({"login": login, "password": password, "code": code}))
            .send()
            .await
            .with_context(|| format!("connecting to {base}"))?;
        let r: LoginResponse = check(res).await.context("login")?.json().await?;
        Ok(ApiClient {
            base,
            http,
            trust: trust.clone(),
            session: SessionHandle::new(r.session),
        })
    }

    /// Signs in computing the code from the TOTP secret (base32, as in the
    /// otpauth URI): for automation, e.g. `TELENODE_TOTP_SECRET`.
    pub async fn login_with_totp_secret(
        trust: &Trust,
        base: &str,
        login: &str,
        password: &str,
        totp_secret: &str,
    ) -> anyhow::Result<ApiClient> {
        let secret = crate::totp::base32_decode(totp_secret)
            .filter(|s| !s.is_empty())
            .context("the TOTP secret is not base32")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let code = crate::totp::code_at(&secret, now);
        Self::login(trust, base, login, password, &code).await
    }

    /// A client for a session obtained earlier (e.g. kept by the desktop
    /// client); nothing is checked until the first request.
    pub fn from_session(trust: &Trust, base: &str, session: &str) -> anyhow::Result<ApiClient> {
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            http: trust.http_client()?,
            trust: trust.clone(),
            session: SessionHandle::new(session),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The certificates this client trusts (call agents use the same).
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The current session token.
    pub fn session(&self) -> String {
        self.session.get()
    }

    /// The session, shared: for call agents, which then follow rotations.
    pub fn session_handle(&self) -> SessionHandle {
        self.session.clone()
    }

    /// Sends an authenticated request; takes a rotated session from the
    /// answer.
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let res = req
            .bearer_auth(self.session.get())
            .send()
            .await
            .with_context(|| format!("connecting to {}", self.base))?;
        if let Some(fresh) = res
            .headers()
            .get(crate::server::api::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.session.set(fresh.to_owned());
        }
        check(res).await
    }

    /// The WebSocket URL of the node.
    pub fn ws_url(&self) -> String {
        ws_url(&self.base)
    }

    /// Creates a consultation: makes the token and link key here, sends the
    /// node only the token's hash.
    pub async fn new_consultation(&self, ttl_secs: Option<u64>) -> anyhow::Result<PatientLink> {
        let token = random_bytes::<32>();
        let link_key = LinkKey::from_bytes(random_bytes::<32>());
        let mut body = serde_json::json!({"token_hash": b64u(&creds::token_hash(&token))});
        if let Some(ttl) = ttl_secs {
            body["ttl_secs"] = ttl.into();
        }
        let consultation: ConsultationInfo = self
            .send(
                self.http
                    .post(format!("{}/api/v1/consultations", self.base))
                    .json(&body),
            )
            .await
            .context("creating consultation")?
            .json()
            .await?;
        let url = format!("{}/c/{}#{}", self.base, b64u(&token), link_key.to_b64u());
        Ok(PatientLink {
            consultation,
            url,
            link_key,
        })
    }

    pub async fn consultations(&self) -> anyhow::Result<Vec<ConsultationInfo>> {
        let req = self.http.get(format!("{}/api/v1/consultations", self.base));
        Ok(self.send(req).await?.json().await?)
    }

    pub async fn end(&self, id: &str) -> anyhow::Result<ConsultationInfo> {
        let req = self
            .http
            .post(format!("{}/api/v1/consultations/{id}/end", self.base));
        Ok(self.send(req).await?.json().await?)
    }

    pub async fn logout(&self) -> anyhow::Result<()> {
        self.send(self.http.post(format!("{}/api/v1/logout", self.base)))
            .await?;
        Ok(())
    }
}

/// Automation: the TOTP secret (base32) to compute sign-in codes from.
pub const TOTP_SECRET_ENV: &str = "TELENODE_TOTP_SECRET";

/// Signs in with the typed code, or with one computed from
/// `TELENODE_TOTP_SECRET` when none was typed.
pub async fn sign_in(
    trust: &Trust,
    node: &str,
    login: &str,
    password: &str,
    code: &str,
) -> anyhow::Result<ApiClient> {
    match std::env::var(TOTP_SECRET_ENV) {
        Ok(secret) if code.is_empty() => {
            ApiClient::login_with_totp_secret(trust, node, login, password, &secret).await
        }
        _ => ApiClient::login(trust, node, login, password, code).await,
    }
}

/// `http(s)://host` → `ws(s)://host/ws`.
pub fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}/ws")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}/ws")
    } else {
        format!("{base}/ws")
    }
}

/// Splits a patient link into node base URL, token and link key.
pub fn parse_link(url: &str) -> anyhow::Result<(String, String, LinkKey)> {
    let (before, key) = url.split_once('#').context("link has no #key")?;
    let (base, token) = before.rsplit_once("/c/").context("link has no /c/ path")?;
    let key = LinkKey::from_b64u(key).map_err(|e| anyhow::anyhow!("link key: {e}"))?;
    Ok((base.to_owned(), token.to_owned(), key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_keep_their_words_and_status() {
        let e = HttpError {
            status: reqwest::StatusCode::UNAUTHORIZED,
            code: Some("bad_session".into()),
            message: Some("session expired".into()),
        };
        assert_eq!(
            e.to_string(),
            "session expired (bad_session, HTTP 401 Unauthorized)"
        );
        let e = anyhow::Error::from(HttpError {
            status: reqwest::StatusCode::FORBIDDEN,
            code: None,
            message: None,
        })
        .context("listing");
        assert_eq!(format!("{e:#}"), "listing: HTTP 403 Forbidden");
        let status = e.downcast_ref::<HttpError>().map(|h| h.status.as_u16());
        assert_eq!(status, Some(403));
    }
}
