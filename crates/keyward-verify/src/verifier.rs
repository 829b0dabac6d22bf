//! [`Verifier`]: discovery, the key set and its refetch, the feed follower
//! on a thread of its own, and the one `verify` call that puts them together.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::oneshot;

use crate::cache::{Verified, VerifiedTokens};
use crate::claims::AccessClaims;
use crate::error::{ConnectError, VerifyError};
use crate::feed::{self, Feed, FeedConfig, FeedStatus};
use crate::policy::StalePolicy;
use crate::token::{check_times, verify_local, Expectations, KeySet, Local};

/// Keys are fetched again for an unknown `kid` at most this often.
const REFETCH_EVERY: Duration = Duration::from_secs(1);

/// Configures and starts a [`Verifier`]; from [`Verifier::builder`].
#[derive(Clone)]
#[must_use]
pub struct Builder {
    issuer_url: String,
    client_id: String,
    client_secret: String,
    audience: String,
    leeway: Duration,
    token_lifetime: Duration,
    policy: StalePolicy,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("token_lifetime", &self.token_lifetime)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// The `aud` tokens must carry: keyward's `auth.audience` (default
    /// `keyward`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// How far past `exp` (and before `nbf`) a token is still accepted:
    /// keyward's `auth.leeway_seconds` (default 5 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest lifetime of keyward's access tokens, its
    /// `auth.access_ttl_seconds` (default 900 s): revocations older than this
    /// plus the leeway concern only expired tokens and are forgotten. Set it
    /// if keyward's is longer.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// What to do when the revocation feed has been silent for too long
    /// (default: [`StalePolicy::FailClosed`] after 30 s).
    pub fn stale_policy(mut self, policy: StalePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long [`connect`](Self::connect) may take in all (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Fetches the discovery document and the keys, connects to the
    /// revocation feed, and returns once the feed has delivered the current
    /// set, so that the first verification already knows every revocation.
    pub async fn connect(self) -> Result<Verifier, ConnectError> {
        let timeout = self.connect_timeout;
        let (runtime, stop) = background_runtime()?;
        let start = runtime.spawn(self.start(runtime.clone()));
        let started = tokio::time::timeout(timeout, start).await;
        match started {
            Err(_) => Err(ConnectError::FeedTimeout(timeout)),
            Ok(Err(join)) => Err(ConnectError::Fetch {
                what: "starting the verifier",
                detail: join.to_string(),
            }),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Ok(Ok(mut inner))) => {
                inner.stop = Some(stop);
                Ok(Verifier {
                    inner: Arc::new(inner),
                })
            }
        }
    }

    async fn start(self, runtime: tokio::runtime::Handle) -> Result<Inner, ConnectError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| fetch_error("building the HTTP client", e))?;
        let base = self.issuer_url.trim_end_matches('/');
        let discovery_url = url(&format!("{base}/.well-known/openid-configuration"))?;
        let discovery: Discovery = get_json(&http, discovery_url, "the discovery document").await?;
        if !discovery
            .id_token_signing_alg_values_supported
            .iter()
            .any(|a| a == "EdDSA")
        {
            return Err(ConnectError::UnsupportedAlgorithm(
                discovery.id_token_signing_alg_values_supported,
            ));
        }
        let jwks_uri = url(&discovery.jwks_uri)?;
        let keys = fetch_keys(&http, jwks_uri.clone()).await?;
        let feed = Arc::new(Feed::new());
        let (ready_tx, ready_rx) = oneshot::channel();
        let config = FeedConfig {
            http: http.clone(),
            url: url(&discovery.revocation_endpoint_stream)?,
            client_id: self.client_id,
            client_secret: self.client_secret,
            horizon: self.token_lifetime + self.leeway,
        };
        let follower = tokio::spawn(feed::follow(feed.clone(), config, Some(ready_tx)));
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                follower.abort();
                return Err(e);
            }
            Err(_) => {
                return Err(ConnectError::Fetch {
                    what: "the revocation feed",
                    detail: "the follower stopped".into(),
                })
            }
        }
        Ok(Inner {
            expect: Expectations {
                issuer: discovery.issuer,
                audience: self.audience,
                leeway_seconds: self.leeway.as_secs() as i64,
            },
            keys: RwLock::new(Arc::new(keys)),
            last_fetch: tokio::sync::Mutex::new(Instant::now()),
            verified: VerifiedTokens::default(),
            feed,
            policy: self.policy,
            http,
            jwks_uri,
            runtime,
            stop: None,
        })
    }
}

/// The discovery fields a verifier needs (API.md section 7).
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    revocation_endpoint_stream: String,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

fn url(s: &str) -> Result<reqwest::Url, ConnectError> {
    reqwest::Url::parse(s).map_err(|_| ConnectError::BadUrl(s.to_string()))
}

fn fetch_error(what: &'static str, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Fetch {
        what,
        detail: e.to_string(),
    }
}

async fn get_bytes(
    http: &reqwest::Client,
    url: reqwest::Url,
    what: &'static str,
) -> Result<Vec<u8>, ConnectError> {
    let response = http
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| fetch_error(what, e))?;
    if !response.status().is_success() {
        return Err(fetch_error(what, format!("status {}", response.status())));
    }
    let body = response.bytes().await.map_err(|e| fetch_error(what, e))?;
    Ok(body.to_vec())
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: reqwest::Url,
    what: &'static str,
) -> Result<T, ConnectError> {
    let body = get_bytes(http, url, what).await?;
    serde_json::from_slice(&body).map_err(|e| fetch_error(what, e))
}

async fn fetch_keys(http: &reqwest::Client, url: reqwest::Url) -> Result<KeySet, ConnectError> {
    let body = get_bytes(http, url, "the JWKS").await?;
    KeySet::from_jwks(&body).map_err(|e| fetch_error("the JWKS", e))
}

/// A current-thread runtime on a thread of its own, where every network
/// call of the verifier runs, whatever runtime (or runtimes: actix-web has
/// one per worker) the application verifies from. Dropping the sender stops
/// it.
fn background_runtime() -> Result<(tokio::runtime::Handle, oneshot::Sender<()>), ConnectError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fetch_error("starting the verifier's runtime", e))?;
    let handle = runtime.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("keyward-verify".into())
        .spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            })
        })
        .map_err(|e| fetch_error("starting the verifier's thread", e))?;
    Ok((handle, stop))
}

struct Inner {
    expect: Expectations,
    keys: RwLock<Arc<KeySet>>,
    /// When the keys were last fetched; held while a fetch runs, so that
    /// tokens arriving meanwhile wait for it rather than fetch again.
    last_fetch: tokio::sync::Mutex<Instant>,
    /// Tokens verified before skip the signature check (not the times, the
    /// key or the revocation set).
    verified: VerifiedTokens,
    feed: Arc<Feed>,
    policy: StalePolicy,
    http: reqwest::Client,
    jwks_uri: reqwest::Url,
    runtime: tokio::runtime::Handle,
    /// Dropped with the last clone of the verifier: stops the background
    /// thread and the feed with it.
    stop: Option<oneshot::Sender<()>>,
}

/// Verifies keyward access tokens locally and refuses revoked ones from
/// memory. Cheap to clone (all clones share one key set, one feed
/// connection and one background thread, which stop with the last clone).
///
/// See the [crate documentation](crate) for an example.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.expect.issuer)
            .field("audience", &self.inner.expect.audience)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Starts configuring a verifier for the keyward at `issuer_url` (the
    /// base URL its discovery document is under, e.g.
    /// `https://auth.example.com`), with a service's credentials from
    /// `keyward services create NAME`.
    pub fn builder(
        issuer_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Builder {
        Builder {
            issuer_url: issuer_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            audience: "keyward".into(),
            leeway: Duration::from_secs(5),
            token_lifetime: Duration::from_secs(900),
            policy: StalePolicy::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Verifies an access token (the bare token, without `Bearer `): its
    /// signature, `typ`, `iss`, `aud`, `exp` and `nbf`, then the revocation
    /// set and the feed's freshness. Answers from memory, except for a token
    /// signed by a key it has not seen, which makes it fetch keyward's keys
    /// again (at most once a second).
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        self.verify_shared(token).await.map(Arc::unwrap_or_clone)
    }

    /// [`verify`](Self::verify), the claims shared with the cache's entry
    /// (what `VerifiedUser` holds): no copy of their strings per request.
    pub(crate) async fn verify_shared(
        &self,
        token: &str,
    ) -> Result<Arc<AccessClaims>, VerifyError> {
        match self.verify_from_memory(token) {
            Err(Local::UnknownKid(kid)) => {
                self.refetch_keys(&kid).await?;
                self.verify_from_memory(token).map_err(Local::into_error)
            }
            other => other.map_err(Local::into_error),
        }
    }

    /// [`verify`](Self::verify) without the refetch: every check, from
    /// memory, or `UnknownKid` when the keys must be fetched first. The web
    /// integrations answer most requests with this alone, without a future.
    pub(crate) fn verify_from_memory(&self, token: &str) -> Result<Arc<AccessClaims>, Local> {
        let verified = self.verify_known(token, crate::unix_now())?;
        // Checked at every request, cached token or not: from memory.
        if let Some(reason) = self.inner.feed.revokes(&verified.claims, &verified.kid) {
            return Err(Local::Refused(VerifyError::Revoked(reason)));
        }
        self.inner
            .policy
            .check(self.inner.feed.silent_for())
            .map_err(Local::Refused)?;
        Ok(Arc::clone(&verified.claims))
    }

    /// The state of the revocation feed.
    pub fn feed_status(&self) -> FeedStatus {
        self.inner.feed.status()
    }

    /// The issuer tokens must name (from the discovery document).
    pub fn issuer(&self) -> &str {
        &self.inner.expect.issuer
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The token's claims and key, from the cache when it verified before
    /// (its key still published and its times checked again), else verified
    /// and remembered.
    fn verify_known(&self, token: &str, now: i64) -> Result<Arc<Verified>, Local> {
        let leeway = self.inner.expect.leeway_seconds;
        if let Some(hit) = self.inner.verified.get(token) {
            let published = self
                .inner
                .keys
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&hit.kid);
            if published {
                check_times(&hit.claims, leeway, now)?;
                return Ok(hit);
            }
        }
        let keys = self.current_keys();
        let (claims, kid) = verify_local(token, &keys, &self.inner.expect, now)?;
        let expired = |c: &AccessClaims| check_times(c, leeway, now).is_err();
        Ok(self.inner.verified.insert(
            token,
            Verified {
                claims: Arc::new(claims),
                kid,
            },
            expired,
        ))
    }

    /// Fetches the keys again, at most once a second: a caller arriving
    /// within a second of the last fetch waits for the second to pass (so a
    /// key rotated just after a fetch is still learnt), and callers arriving
    /// while a fetch runs wait for it.
    async fn refetch_keys(&self, kid: &str) -> Result<(), VerifyError> {
        let mut last = self.inner.last_fetch.lock().await;
        if self.current_keys().contains(kid) {
            // Another caller fetched it meanwhile.
            return Ok(());
        }
        if let Some(wait) = REFETCH_EVERY.checked_sub(last.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        *last = Instant::now();
        let (http, uri) = (self.inner.http.clone(), self.inner.jwks_uri.clone());
        let fetched = self
            .inner
            .runtime
            .spawn(async move { fetch_keys(&http, uri).await })
            .await;
        match fetched {
            Ok(Ok(keys)) => {
                *self.inner.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                self.inner.verified.clear();
                Ok(())
            }
            Ok(Err(e)) => {
                log::warn!("keyward-verify: cannot fetch keyward's keys: {e}");
                Err(VerifyError::KeysUnavailable)
            }
            Err(_) => Err(VerifyError::KeysUnavailable),
        }
    }
}
