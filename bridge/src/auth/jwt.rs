//! Bearer JWTs. The accepted algorithms are fixed by configuration: HS256 only with the
//! shared secret, RS256/ES256 only with a JWKS key whose type fixes the algorithm. A token's
//! `alg` only selects among those, so `alg: none` and algorithm confusion (an HS256 token
//! "signed" with a public key) are refused. With `--jwt-issuer`/`--jwt-audience` set, `iss`/`aud`
//! are required and must match (a non-string `iss`, or an `aud` that is not a string or an
//! array of strings, is refused); the issuer names the identity's [`Origin`].

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, errors::ErrorKind};
use serde_json::{Map, Value};

use super::{
    Identity, Origin, Via,
    jwks::{Jwks, JwksError},
};
use crate::{
    error::{ApiError, AuthFailure},
    secret::Secret,
};

pub(crate) struct JwtSettings {
    pub hs_secret: Option<Secret>,
    pub jwks: Option<Jwks>,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub leeway: Duration,
    pub tenant_claim: String,
}

pub(crate) struct JwtVerifier {
    hs_key: Option<DecodingKey>,
    settings: JwtSettings,
}

impl JwtVerifier {
    pub(crate) fn new(settings: JwtSettings) -> Self {
        let hs_key = settings
            .hs_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose().as_bytes()));
        Self { hs_key, settings }
    }

    pub(crate) async fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let refuse = |failure| ApiError::Unauthenticated(failure);
        let header = decode_header(token).map_err(|_| refuse(AuthFailure::MalformedToken))?;
        let jwks_key;
        let key: &DecodingKey = match header.alg {
            Algorithm::HS256 => self
                .hs_key
                .as_ref()
                .ok_or(refuse(AuthFailure::AlgorithmNotAccepted))?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self
                    .settings
                    .jwks
                    .as_ref()
                    .ok_or(refuse(AuthFailure::AlgorithmNotAccepted))?;
                let kid = header.kid.as_deref().ok_or(refuse(AuthFailure::NoKid))?;
                let (alg, key) = jwks.key(kid).await.map_err(|e| match e {
                    JwksError::UnknownKid => refuse(AuthFailure::UnknownKid),
                    JwksError::Fetch(detail) => {
                        tracing::warn!(%detail, "JWKS unavailable");
                        ApiError::AuthUnavailable
                    }
                })?;
                if alg != header.alg {
                    return Err(refuse(AuthFailure::AlgorithmMismatch));
                }
                jwks_key = key;
                &jwks_key
            }
            _ => return Err(refuse(AuthFailure::AlgorithmNotAccepted)),
        };

        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        // A configured check on a claim the token lacks (or holds as another type) must not
        // be skipped: jsonwebtoken skips it unless the claim is required.
        let mut required = vec!["exp", "sub"];
        if self.settings.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.settings.audiences);
            required.push("aud");
        }
        if !self.settings.issuers.is_empty() {
            validation.set_issuer(&self.settings.issuers);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let claims = decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| {
                refuse(match e.kind() {
                    ErrorKind::ExpiredSignature => AuthFailure::Expired,
                    ErrorKind::ImmatureSignature => AuthFailure::NotYetValid,
                    ErrorKind::InvalidAudience => AuthFailure::WrongAudience,
                    ErrorKind::InvalidIssuer => AuthFailure::WrongIssuer,
                    ErrorKind::InvalidSignature => AuthFailure::BadSignature,
                    ErrorKind::MissingRequiredClaim(_) => AuthFailure::MissingClaim,
                    _ => AuthFailure::Unverifiable,
                })
            })?
            .claims;
        identity(&claims, &self.settings.tenant_claim)
    }
}

fn identity(claims: &Map<String, Value>, tenant_claim: &str) -> Result<Identity, ApiError> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or(ApiError::Unauthenticated(AuthFailure::BadSubject))?;
    // The issuer names the identity's namespace: it must be one string (jsonwebtoken also
    // accepts an array, which RFC 7519 does not).
    let issuer = match claims.get("iss") {
        None => "",
        Some(Value::String(iss)) => iss,
        Some(_) => return Err(ApiError::Unauthenticated(AuthFailure::BadIssuer)),
    };
    let tenant = claims
        .get(tenant_claim)
        .and_then(Value::as_str)
        .unwrap_or_default();
    // `scope` (RFC 8693: space-separated) or `scp` (array or string), as IdPs differ.
    let mut scopes: Vec<String> = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_owned)),
            Some(Value::Array(a)) => {
                scopes.extend(a.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
    }
    Ok(Identity {
        subject: subject.to_owned(),
        tenant: tenant.to_owned(),
        scopes,
        origin: Origin::Jwt {
            issuer: issuer.to_owned(),
        },
        via: Via::Credential,
    })
}
