//! Bearer JWTs. The accepted algorithms are fixed by configuration: HS256 only with the
//! shared secret, RS256/ES256 only with a JWKS key whose type fixes the algorithm. A token's
//! `alg` only selects among those, so `alg: none` and algorithm confusion (an HS256 token
//! "signed" with a public key) are refused.

use std::{collections::HashSet, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use super::{
    Identity, Via,
    jwks::{Jwks, JwksError},
};
use crate::{error::ApiError, secret::Secret};

pub struct JwtSettings {
    pub hs_secret: Option<Secret>,
    pub jwks: Option<Jwks>,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub leeway: Duration,
    pub tenant_claim: String,
}

pub struct JwtVerifier {
    hs_key: Option<DecodingKey>,
    settings: JwtSettings,
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> Self {
        let hs_key = settings
            .hs_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose().as_bytes()));
        Self { hs_key, settings }
    }

    pub async fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let refuse = |detail: &str| ApiError::Unauthenticated(detail.to_owned());
        let header = decode_header(token).map_err(|_| {
            refuse("the bearer token is not a well-formed JWT with a supported alg")
        })?;
        let jwks_key;
        let key: &DecodingKey = match header.alg {
            Algorithm::HS256 => self
                .hs_key
                .as_ref()
                .ok_or_else(|| refuse("HS256 tokens are not accepted here"))?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self
                    .settings
                    .jwks
                    .as_ref()
                    .ok_or_else(|| refuse("RS256/ES256 tokens are not accepted here"))?;
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| refuse("the token has no `kid`"))?;
                let (alg, key) = jwks.key(kid).await.map_err(|e| match e {
                    JwksError::UnknownKid => refuse("the token's `kid` is not a known signing key"),
                    JwksError::Fetch(detail) => {
                        tracing::warn!(%detail, "JWKS unavailable");
                        ApiError::AuthUnavailable
                    }
                })?;
                if alg != header.alg {
                    return Err(refuse("the token's alg does not match its key"));
                }
                jwks_key = key;
                &jwks_key
            }
            _ => return Err(refuse("this JWT algorithm is not accepted")),
        };

        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.required_spec_claims = HashSet::from(["exp".to_owned(), "sub".to_owned()]);
        if self.settings.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.settings.audiences);
        }
        if !self.settings.issuers.is_empty() {
            validation.set_issuer(&self.settings.issuers);
        }
        let claims = decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let detail = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                    ErrorKind::InvalidAudience => "the token is for another audience",
                    ErrorKind::InvalidIssuer => "the token is from an untrusted issuer",
                    ErrorKind::InvalidSignature => "the token's signature is invalid",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks `exp` or `sub`",
                    _ => "the token could not be verified",
                };
                refuse(detail)
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
        .ok_or_else(|| ApiError::Unauthenticated("the token's `sub` must be a string".into()))?;
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
        via: Via::Jwt,
    })
}
