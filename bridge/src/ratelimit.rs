//! Rate limiting and admission, decided before any response (and so any SSE stream) starts.
//!
//! - [`RateLimits`]: a token bucket per identity and route class (`chat`: runs and tickets;
//!   `read`: the rest of `/v1`), with `governor`. Every answer on a limited route carries the
//!   `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers);
//!   refusals are 429 with `Retry-After`.
//! - [`Admission`]: a cap on open runs per identity (429) and per process (503, shedding).
//!   A [`Permit`] travels with the run and frees its slot when the stream ends.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use axum::http::{HeaderValue, Method};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use crate::{
    config::RateSpec,
    error::{ApiError, RateLimitHeaders},
    metrics::OpenStream,
};

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One route class's bucket.
struct Class {
    name: &'static str,
    limiter: Limiter,
    limit: u32,
    window_secs: u64,
}

/// The per-identity request budgets.
pub(crate) struct RateLimits {
    chat: Option<Class>,
    read: Option<Class>,
    /// Failed authentications, keyed by client IP.
    auth_failures: Option<Class>,
}

impl RateLimits {
    pub(crate) fn new(chat: RateSpec, read: RateSpec, auth_failures: RateSpec) -> Self {
        Self {
            chat: class("chat", chat),
            read: class("read", read),
            auth_failures: class("auth-failures", auth_failures),
        }
    }

    /// Counts one failed authentication from `ip`: the refusal to send, which becomes a
    /// 429 once the IP has failed too often.
    pub(crate) fn auth_failed(&self, ip: std::net::IpAddr, refusal: ApiError) -> ApiError {
        match &self.auth_failures {
            Some(class) => match take(class, &format!("ip:{ip}")) {
                Ok(_) => refusal,
                Err(limited) => limited,
            },
            None => refusal,
        }
    }

    /// Takes one token for the caller `key` (an identity's rate key) on the class of `path`;
    /// the headers to send either way.
    pub(crate) fn check(
        &self,
        method: &Method,
        path: &str,
        key: &str,
    ) -> Result<Option<RateLimitHeaders>, ApiError> {
        let class = if is_chat_route(method, path) {
            &self.chat
        } else {
            &self.read
        };
        match class {
            Some(class) => take(class, key).map(Some),
            None => Ok(None),
        }
    }
}

/// Takes one token from `key`'s bucket in `class`; the headers to send either way.
fn take(class: &Class, key: &str) -> Result<RateLimitHeaders, ApiError> {
    let policy = HeaderValue::from_str(&format!(
        "\"{}\";q={};w={}",
        class.name, class.limit, class.window_secs
    ))
    .unwrap_or(HeaderValue::from_static("\"default\""));
    match class.limiter.check_key(&key.to_owned()) {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity();
            Ok(RateLimitHeaders {
                policy,
                state: header(class.name, remaining, 0),
            })
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Round up: retrying a fraction of a second early would be refused again.
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let retry_after = retry_after.max(1);
            Err(ApiError::RateLimited {
                class: class.name,
                retry_after,
                headers: RateLimitHeaders {
                    policy,
                    state: header(class.name, 0, retry_after),
                },
            })
        }
    }
}

fn header(name: &str, remaining: u32, reset: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{name}\";r={remaining};t={reset}"))
        .unwrap_or(HeaderValue::from_static("\"default\""))
}

fn class(name: &'static str, spec: RateSpec) -> Option<Class> {
    let (n, period) = spec.0?;
    let burst = NonZeroU32::new(n)?;
    let quota = Quota::with_period(period / n)?.allow_burst(burst);
    let limiter: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(quota);
    Some(Class {
        name,
        limiter: limiter.with_middleware::<StateInformationMiddleware>(),
        limit: n,
        window_secs: period.as_secs().max(1),
    })
}

/// Runs, tickets and streams cost a `chat` token; everything else a `read` token.
/// Routes that start runs (or issue tickets for them) spend the `chat` budget: every POST,
/// the EventSource run endpoint and the WebSocket (which posts messages). Reading (thread
/// events, history, lists) and deleting spend the `read` budget.
fn is_chat_route(method: &Method, path: &str) -> bool {
    method == Method::POST || path.ends_with("/stream") || path.ends_with("/ws")
}

/// Caps on open runs.
pub(crate) struct Admission {
    per_identity: usize,
    total: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_identity: HashMap<String, usize>,
}

impl Admission {
    pub(crate) fn new(per_identity: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_identity,
            total,
            open: Mutex::default(),
        })
    }

    /// A slot for one stream of the caller `key` (an identity's rate key), or the refusal.
    pub(crate) fn admit(self: &Arc<Self>, key: String) -> Result<Permit, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.total {
            return Err(ApiError::Overloaded { limit: self.total });
        }
        let mine = open.by_identity.entry(key.clone()).or_default();
        if *mine >= self.per_identity {
            return Err(ApiError::TooManyStreams {
                limit: self.per_identity,
            });
        }
        *mine += 1;
        open.total += 1;
        Ok(Permit {
            admission: Arc::clone(self),
            key,
        })
    }

    /// Runs open right now (all identities).
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

/// One admitted run; dropping it frees the slot.
pub(crate) struct Permit {
    admission: Arc<Admission>,
    key: String,
}

/// What an open stream holds until it ends: its admission slot and its place in the
/// open-stream gauge. The response body (or the socket task) owns it, so both are released
/// exactly when the client's stream ends, however it ends.
pub(crate) struct StreamGuard {
    _permit: Permit,
    _open: OpenStream,
}

impl Permit {
    /// This slot, counted as an open stream until the guard drops.
    pub(crate) fn counted(self, open: OpenStream) -> StreamGuard {
        StreamGuard {
            _permit: self,
            _open: open,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_identity.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.by_identity.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn who(name: &str) -> String {
        format!("jwt:t:{name}")
    }

    #[test]
    fn admission_caps_and_frees() {
        let a = Admission::new(1, 2);
        let p1 = a.admit(who("a")).unwrap();
        assert!(matches!(
            a.admit(who("a")),
            Err(ApiError::TooManyStreams { .. })
        ));
        let _p2 = a.admit(who("b")).unwrap();
        assert!(matches!(
            a.admit(who("c")),
            Err(ApiError::Overloaded { .. })
        ));
        drop(p1);
        assert_eq!(a.open(), 1);
        a.admit(who("a")).unwrap();
    }

    #[test]
    fn buckets_refuse_with_retry_after() {
        let limits = RateLimits::new(
            RateSpec(Some((2, Duration::from_secs(60)))),
            RateSpec(None),
            RateSpec(None),
        );
        let id = who("a");
        assert!(
            limits
                .check(&Method::POST, "/v1/agents/x/chat", &id)
                .is_ok()
        );
        assert!(
            limits
                .check(&Method::POST, "/v1/agents/x/chat", &id)
                .is_ok()
        );
        match limits.check(&Method::POST, "/v1/agents/x/chat", &id) {
            Err(ApiError::RateLimited { retry_after, .. }) => assert!(retry_after >= 1),
            other => panic!("{other:?}"),
        }
        assert!(
            limits
                .check(&Method::POST, "/v1/agents/x/chat", &who("b"))
                .is_ok()
        );
        assert!(
            limits
                .check(&Method::GET, "/v1/other", &id)
                .unwrap()
                .is_none()
        );
    }
}
