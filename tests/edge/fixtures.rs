//! What the edge tests share: secrets on disk, token minting, a JWKS server.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Json, Router, extract::State, routing::get};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::support::{Agent, Bridge, problem, send, spawn_agent, spawn_bridge_strict};

pub const HS_SECRET: &str = "edge-suite-shared-secret-0123456789";
pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "agent-bridge";
pub const API_KEY: &str = "svc-key-0123456789abcdef";

/// A private folder of secret files for one test.
pub struct Secrets {
    pub dir: PathBuf,
}

impl Secrets {
    pub fn new() -> Self {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("bridge-edge-{}-{n}-{}", std::process::id(), now()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("jwt-secret"), format!("{HS_SECRET}\n")).unwrap();
        std::fs::write(dir.join("api-keys"), format!("# test\nbilling:{API_KEY}\n")).unwrap();
        std::fs::write(dir.join("ticket-secret"), "ticket-secret-for-tests\n").unwrap();
        std::fs::write(dir.join("agent-token"), "agent-credential-42\n").unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Flags for HS256 JWTs (with issuer and audience checks) and API keys.
    pub fn auth_flags(&self) -> Vec<String> {
        vec![
            "--jwt-secret-file".into(),
            self.path("jwt-secret"),
            "--jwt-issuer".into(),
            ISSUER.into(),
            "--jwt-audience".into(),
            AUDIENCE.into(),
            "--api-keys-file".into(),
            self.path("api-keys"),
            "--ticket-secret-file".into(),
            self.path("ticket-secret"),
        ]
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An agent stub behind a bridge that demands credentials ([`Secrets::auth_flags`]: HS256
/// JWTs, the API key, tickets), with a test's own flags on top.
pub struct Guarded {
    // Declared first, dropped first: the bridge goes before its agent and secret files.
    pub bridge: Bridge,
    pub secrets: Secrets,
    pub agent: Agent,
}

impl Guarded {
    /// A new stub behind the bridge as `assistant`, with `extra` flags.
    pub async fn start(extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::start_with(spawn_agent().await, &["assistant"], |_| extra).await
    }

    /// `agent` behind the bridge under each of `names`; `extra` may name the secret files.
    pub async fn start_with(
        agent: Agent,
        names: &[&str],
        extra: impl FnOnce(&Secrets) -> Vec<String>,
    ) -> Self {
        let secrets = Secrets::new();
        let mut flags = secrets.auth_flags();
        flags.extend(extra(&secrets));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let agents: Vec<(&str, &str)> = names.iter().map(|n| (*n, agent.url.as_str())).collect();
        let bridge = spawn_bridge_strict(&agents, &flags).await;
        Self {
            bridge,
            secrets,
            agent,
        }
    }

    /// `POST /v1/agents/{agent}/chat` with `{"message": "hi"}` and one credential header
    /// (`(name, value)`), or none.
    pub async fn chat(&self, agent: &str, credential: Option<(&str, &str)>) -> reqwest::Response {
        let path = format!("/v1/agents/{agent}/chat");
        let mut request = self.bridge.http.post(self.bridge.url(&path));
        if let Some((name, value)) = credential {
            request = request.header(name, value);
        }
        send(request.json(&chat_body("hi"))).await
    }

    /// [`Guarded::chat`] to `assistant` with a bearer token.
    pub async fn chat_as(&self, token: &str) -> reqwest::Response {
        self.chat(
            "assistant",
            Some(("authorization", &format!("Bearer {token}"))),
        )
        .await
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a valid token for `sub` in tenant `acme`, allowed every agent.
pub fn claims(sub: &str) -> Value {
    json!({
        "sub": sub,
        "tenant": "acme",
        "scope": "agent:*",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now(),
        "exp": now() + 600,
    })
}

pub fn hs256(claims: &Value) -> String {
    hs256_with(claims, HS_SECRET.as_bytes())
}

pub fn hs256_with(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

pub fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/edge/keys")
            .join(name),
    )
    .unwrap()
}

/// An ES256 token signed with test key `key` (`a` or `b`), naming `kid` in its header.
pub fn es256(claims: &Value, key: &str, kid: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    let key = EncodingKey::from_ec_pem(&key_file(&format!("es256-{key}.pem"))).unwrap();
    encode(&header, claims, &key).unwrap()
}

pub fn jwk(key: &str) -> Value {
    serde_json::from_slice(&key_file(&format!("es256-{key}.jwk.json"))).unwrap()
}

/// A JWKS endpoint on loopback whose key set a test can change while the bridge runs.
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Value>>,
    pub fetches: Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> Self {
        #[derive(Clone)]
        struct Shared {
            keys: Arc<Mutex<Value>>,
            fetches: Arc<std::sync::atomic::AtomicUsize>,
        }
        let shared = Shared {
            keys: Arc::new(Mutex::new(json!({ "keys": keys }))),
            fetches: Arc::default(),
        };
        let app = Router::new()
            .route(
                "/.well-known/jwks.json",
                get(|State(s): State<Shared>| async move {
                    s.fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Json(s.keys.lock().unwrap().clone())
                }),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/.well-known/jwks.json"),
            keys: shared.keys,
            fetches: shared.fetches,
        }
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = json!({ "keys": keys });
    }
}

/// Asserts a problem document of `status` and type `urn:agent-bridge:problem:{slug}`.
pub async fn refused(response: reqwest::Response, status: u16, slug: &str) -> Value {
    let (got, body) = problem(response).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(
        body["type"],
        format!("urn:agent-bridge:problem:{slug}"),
        "{body}"
    );
    body
}

pub fn chat_body(message: &str) -> Value {
    json!({ "message": message })
}
