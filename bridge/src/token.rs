//! Development tokens: `bridge token` mints an HS256 JWT that a bridge started with the same
//! `--jwt-secret-file` accepts, so a non-anonymous bridge can be tried without an identity
//! provider. Production tokens come from the identity provider (JWKS), not from here.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Map, Value, json};

use crate::{auth::ALL_AGENTS_SCOPE, secret::Secret};

/// The longest lifetime `bridge token` signs: a development token should not outlive a
/// working session by much.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// `bridge token`: what the token says. Prints the token alone on stdout, so that
/// `TOKEN=$(bridge token …)` works.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// File holding the HS256 shared secret: the one the bridge reads with `--jwt-secret-file`.
    #[arg(long, env = "BRIDGE_JWT_SECRET_FILE")]
    pub jwt_secret_file: PathBuf,

    /// Who the token speaks for (`sub`); rate limits and stream caps count per subject.
    #[arg(long, default_value = "developer")]
    pub sub: String,

    /// The caller's tenant: threads are kept apart per tenant. Unset: no tenant claim.
    #[arg(long)]
    pub tenant: Option<String>,

    /// The claim the tenant is written to (the bridge's `--jwt-tenant-claim`).
    #[arg(long, default_value = "tenant")]
    pub tenant_claim: String,

    /// An agent the token may call, as `agent:NAME`, or `agent:*` for all (repeatable).
    #[arg(long = "scope", default_value = ALL_AGENTS_SCOPE)]
    pub scopes: Vec<String>,

    /// How long the token is valid (`exp` = now + lifetime; at most 30 days).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub lifetime: Duration,

    /// `iss`, for a bridge started with `--jwt-issuer`.
    #[arg(long)]
    pub issuer: Option<String>,

    /// `aud`, for a bridge started with `--jwt-audience`.
    #[arg(long)]
    pub audience: Option<String>,
}

/// Signs the token `args` describe, issued at `now`. Errors name the flag to fix.
pub fn mint(args: &TokenArgs, now: SystemTime) -> Result<String, String> {
    let secret = Secret::from_file(&args.jwt_secret_file, "--jwt-secret-file")?;
    if args.sub.is_empty() || args.sub.len() > 256 {
        return Err("--sub must be 1 to 256 characters".into());
    }
    if args.lifetime.is_zero() || args.lifetime > MAX_LIFETIME {
        return Err("--lifetime must be more than 0s and at most 30 days".into());
    }
    if let Some(bad) = args.scopes.iter().find(|s| !valid_scope(s)) {
        return Err(format!(
            "--scope {bad:?}: expected `agent:NAME` or `{ALL_AGENTS_SCOPE}`"
        ));
    }
    let iat = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_owned())?
        .as_secs();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(args.sub));
    claims.insert("iat".into(), json!(iat));
    claims.insert("nbf".into(), json!(iat));
    claims.insert("exp".into(), json!(iat + args.lifetime.as_secs()));
    // RFC 8693: one space-separated string.
    claims.insert("scope".into(), json!(args.scopes.join(" ")));
    if let Some(tenant) = &args.tenant {
        claims.insert(args.tenant_claim.clone(), json!(tenant));
    }
    if let Some(issuer) = &args.issuer {
        claims.insert("iss".into(), json!(issuer));
    }
    if let Some(audience) = &args.audience {
        claims.insert("aud".into(), json!(audience));
    }
    encode(
        &Header::new(Algorithm::HS256),
        &Value::Object(claims),
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}

fn valid_scope(scope: &str) -> bool {
    scope.strip_prefix("agent:").is_some_and(|name| {
        name == "*"
            || (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    fn args(secret: &std::path::Path) -> TokenArgs {
        TokenArgs {
            jwt_secret_file: secret.to_owned(),
            sub: "alice".into(),
            tenant: Some("acme".into()),
            tenant_claim: "tenant".into(),
            scopes: vec!["agent:assistant".into()],
            lifetime: Duration::from_secs(600),
            issuer: None,
            audience: None,
        }
    }

    fn secret_file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("bridge-token-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_token_carries_the_claims_and_verifies_with_the_trimmed_secret() {
        let path = secret_file("ok", "s3cret-s3cret-s3cret-s3cret-0123\n");
        let now = SystemTime::now();
        let token = mint(&args(&path), now).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_aud = false;
        let claims = decode::<Map<String, Value>>(
            &token,
            &DecodingKey::from_secret(b"s3cret-s3cret-s3cret-s3cret-0123"),
            &validation,
        )
        .unwrap()
        .claims;
        let iat = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["tenant"], "acme");
        assert_eq!(claims["scope"], "agent:assistant");
        assert_eq!(claims["exp"], iat + 600);
        assert_eq!(claims["nbf"], iat);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_flag() {
        let path = secret_file("bad", "s3cret-s3cret-s3cret-s3cret-0123");
        let now = SystemTime::now();
        let mut a = args(&path);
        a.scopes = vec!["assistant".into()];
        assert!(mint(&a, now).unwrap_err().starts_with("--scope"));
        let mut a = args(&path);
        a.lifetime = Duration::from_secs(31 * 24 * 3600);
        assert!(mint(&a, now).unwrap_err().starts_with("--lifetime"));
        let mut a = args(&path);
        a.jwt_secret_file = path.with_extension("missing");
        assert!(mint(&a, now).unwrap_err().starts_with("--jwt-secret-file"));
        let empty = secret_file("empty", "\n");
        assert!(mint(&args(&empty), now).unwrap_err().contains("is empty"));
    }
}
