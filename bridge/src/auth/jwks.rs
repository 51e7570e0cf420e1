//! RS256/ES256 verification keys from a JWKS URL: fetched on first use, cached, and refetched
//! when a token names a `kid` the cache does not hold (key rotation without restart), at most
//! once per `min_refresh` so unknown `kid`s cannot turn the bridge against the IdP.

use std::{collections::HashMap, sync::Arc, time::Duration};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet},
};
use tokio::{sync::Mutex, time::Instant};

/// A cached key set.
pub(crate) struct Jwks {
    url: String,
    http: reqwest::Client,
    min_refresh: Duration,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, (Algorithm, Arc<DecodingKey>)>,
    fetched_at: Option<Instant>,
}

/// Why no key could be found.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwksError {
    #[error("no key with this kid")]
    UnknownKid,
    #[error("fetching the JWKS failed: {0}")]
    Fetch(String),
}

impl Jwks {
    pub(crate) fn new(url: String, min_refresh: Duration) -> Result<Self, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "--jwks-url/BRIDGE_JWKS_URL `{url}` must be an http(s) URL"
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("--jwks-url: cannot build an HTTP client: {e}"))?;
        Ok(Self {
            url,
            http,
            min_refresh,
            cache: Mutex::default(),
        })
    }

    /// The key `kid` and the one algorithm it may verify.
    pub(crate) async fn key(&self, kid: &str) -> Result<(Algorithm, Arc<DecodingKey>), JwksError> {
        // One lock for lookup and refetch: concurrent requests with a new kid wait for one
        // fetch instead of each starting their own.
        let mut cache = self.cache.lock().await;
        if let Some(found) = cache.keys.get(kid) {
            return Ok(found.clone());
        }
        let may_refetch = cache
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.min_refresh);
        if !may_refetch {
            return Err(JwksError::UnknownKid);
        }
        let keys = self.fetch().await;
        cache.fetched_at = Some(Instant::now());
        cache.keys = keys?;
        tracing::info!(url = %self.url, keys = cache.keys.len(), "JWKS refreshed");
        cache.keys.get(kid).cloned().ok_or(JwksError::UnknownKid)
    }

    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, Arc<DecodingKey>)>, JwksError> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?
            .json()
            .await
            .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // The algorithm is fixed by the key type, never taken from a token.
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, (alg, Arc::new(key)));
                }
                Err(e) => tracing::warn!(%kid, error = %e, "skipping an unusable JWKS key"),
            }
        }
        Ok(keys)
    }
}
