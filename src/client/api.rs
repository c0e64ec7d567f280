//! HTTP client for the doctor API.

use anyhow::{Context, bail};
use serde::Deserialize;
use telenode_signaling::creds;
use telenode_signaling::seal::LinkKey;

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

/// A logged-in doctor's API client.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    session: String,
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

async fn check(res: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if res.status().is_success() {
        return Ok(res);
    }
    let status = res.status();
    match res.json::<ErrorBody>().await {
        Ok(b) => bail!("{} ({}, HTTP {status})", b.error.message, b.error.code),
        Err(_) => bail!("HTTP {status}"),
    }
}

impl ApiClient {
    /// Logs in with login and password.
    pub async fn login(base: &str, login: &str, password: &str) -> anyhow::Result<ApiClient> {
        let base = base.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .user_agent(concat!("telenode/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("HTTP client")?;
        #[derive(Deserialize)]
        struct LoginResponse {
            session: String,
        }
        let res = http
            .post(format!("{base}/api/v1/login"))
            .json(&serde_json::json!({"login": login, "password": password}))
            .send()
            .await
            .with_context(|| format!("connecting to {base}"))?;
        let r: LoginResponse = check(res).await.context("login")?.json().await?;
        Ok(ApiClient {
            base,
            http,
            session: r.session,
        })
    }

    /// A client for a session obtained earlier (e.g. kept by the desktop
    /// client); nothing is checked until the first request.
    pub fn from_session(base: &str, session: &str) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("telenode/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("HTTP client")?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            http,
            session: session.to_owned(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The session token, for the doctor's signalling hello.
    pub fn session(&self) -> &str {
        &self.session
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
        let res = self
            .http
            .post(format!("{}/api/v1/consultations", self.base))
            .bearer_auth(&self.session)
            .json(&body)
            .send()
            .await?;
        let consultation: ConsultationInfo = check(res)
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
        let res = self
            .http
            .get(format!("{}/api/v1/consultations", self.base))
            .bearer_auth(&self.session)
            .send()
            .await?;
        Ok(check(res).await?.json().await?)
    }

    pub async fn end(&self, id: &str) -> anyhow::Result<ConsultationInfo> {
        let res = self
            .http
            .post(format!("{}/api/v1/consultations/{id}/end", self.base))
            .bearer_auth(&self.session)
            .send()
            .await?;
        Ok(check(res).await?.json().await?)
    }

    pub async fn logout(&self) -> anyhow::Result<()> {
        let res = self
            .http
            .post(format!("{}/api/v1/logout", self.base))
            .bearer_auth(&self.session)
            .send()
            .await?;
        check(res).await?;
        Ok(())
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
