//! Why a request's credentials were refused: one variant per reason, each with the text a
//! client reads and the bounded label `bridge_auth_failures_total{reason}` counts it under.

/// A refused credential. The problem document's `detail` is [`AuthFailure::detail`], its type
/// `ticket-refused` for tickets ([`AuthFailure::is_ticket`]) and `unauthenticated` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential at all, and anonymous access is off.
    Missing,
    /// A long-lived credential in the query string (the parameter's name).
    CredentialsInQuery(&'static str),
    /// `Authorization` present but not `Bearer <token>`.
    NotBearer,
    /// A bearer token or cookie, but no JWT verification is configured.
    JwtDisabled,
    /// `X-API-Key`, but no API keys are configured.
    ApiKeysDisabled,
    UnknownApiKey,
    /// Not a JWT, or an `alg` the bridge does not know.
    MalformedToken,
    /// An algorithm this bridge is not configured for (HS256 without a secret, ...).
    AlgorithmNotAccepted,
    /// The token's `alg` differs from the one its JWKS key fixes.
    AlgorithmMismatch,
    NoKid,
    UnknownKid,
    Expired,
    NotYetValid,
    WrongAudience,
    WrongIssuer,
    BadSignature,
    /// `exp`, `sub`, or (when configured) `iss`/`aud` absent or of the wrong type.
    MissingClaim,
    /// `sub` is not a non-empty string of at most 256 bytes.
    BadSubject,
    /// `iss` present but not a string.
    BadIssuer,
    /// Any other reason the token did not verify.
    Unverifiable,
    TicketMalformed,
    TicketForged,
    TicketExpired,
    TicketReused,
    /// A ticket on a method other than `GET`.
    TicketNotOnGet,
    /// A ticket on a route that is not a thread's stream endpoint.
    TicketNotForThisRoute,
    /// A ticket on the stream endpoint of another agent or thread.
    TicketWrongStream,
}

impl AuthFailure {
    /// The text a client reads: fixed, safe, and saying what to do.
    pub fn detail(self) -> String {
        let text = match self {
            Self::Missing => {
                "credentials required: send `Authorization: Bearer <JWT>` or `X-API-Key`"
            }
            Self::CredentialsInQuery(name) => {
                return format!(
                    "credentials are not accepted in the query string (`{name}`): send \
                     `Authorization: Bearer`, or use a stream ticket on GET"
                );
            }
            Self::NotBearer => "the Authorization header must be `Bearer <token>`",
            Self::JwtDisabled => "bearer tokens are not enabled on this bridge",
            Self::ApiKeysDisabled => "API keys are not enabled on this bridge",
            Self::UnknownApiKey => "unknown API key",
            Self::MalformedToken => {
                "the bearer token is not a well-formed JWT with a supported alg"
            }
            Self::AlgorithmNotAccepted => "this JWT algorithm is not accepted here",
            Self::AlgorithmMismatch => "the token's alg does not match its key",
            Self::NoKid => "the token has no `kid`",
            Self::UnknownKid => "the token's `kid` is not a known signing key",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet (nbf)",
            Self::WrongAudience => "the token is for another audience",
            Self::WrongIssuer => "the token is from an untrusted issuer",
            Self::BadSignature => "the token's signature is invalid",
            Self::MissingClaim => {
                "the token lacks a required claim (`exp`, `sub`, and `iss`/`aud` when the \
                 bridge checks them), or one is of the wrong type"
            }
            Self::BadSubject => "the token's `sub` must be a non-empty string",
            Self::BadIssuer => "the token's `iss` must be a string",
            Self::Unverifiable => "the token could not be verified",
            Self::TicketMalformed => "the ticket is malformed",
            Self::TicketForged => "the ticket's signature is invalid",
            Self::TicketExpired => "the ticket has expired; request a new one",
            Self::TicketReused => "the ticket was already used; request a new one",
            Self::TicketNotOnGet => {
                "stream tickets are accepted only on GET stream endpoints; send \
                 `Authorization: Bearer` instead"
            }
            Self::TicketNotForThisRoute => {
                "stream tickets open only a thread's stream endpoints (`stream`, `events`, \
                 `ws`); send `Authorization: Bearer` here"
            }
            Self::TicketWrongStream => "this ticket was issued for another agent or thread",
        };
        text.to_owned()
    }

    /// The metric label: a short, bounded name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::CredentialsInQuery(_) => "credentials_in_query",
            Self::NotBearer | Self::MalformedToken => "malformed",
            Self::JwtDisabled | Self::ApiKeysDisabled => "method_disabled",
            Self::UnknownApiKey => "bad_api_key",
            Self::AlgorithmNotAccepted | Self::AlgorithmMismatch => "algorithm",
            Self::NoKid | Self::UnknownKid => "unknown_key",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer | Self::BadIssuer => "wrong_issuer",
            Self::BadSignature => "bad_signature",
            Self::MissingClaim | Self::BadSubject => "missing_claim",
            Self::Unverifiable => "other",
            Self::TicketMalformed => "ticket_malformed",
            Self::TicketForged => "ticket_forged",
            Self::TicketExpired => "ticket_expired",
            Self::TicketReused => "ticket_reused",
            Self::TicketNotOnGet => "ticket_not_on_get",
            Self::TicketNotForThisRoute => "ticket_wrong_route",
            Self::TicketWrongStream => "ticket_wrong_stream",
        }
    }

    /// Whether the refused credential was a stream ticket.
    pub fn is_ticket(self) -> bool {
        matches!(
            self,
            Self::TicketMalformed
                | Self::TicketForged
                | Self::TicketExpired
                | Self::TicketReused
                | Self::TicketNotOnGet
                | Self::TicketNotForThisRoute
                | Self::TicketWrongStream
        )
    }
}
