//! Authentication: every way a credential can be wrong is refused with 401 problem+json.

use serde_json::json;

use crate::{
    fixtures::{
        API_KEY, Guarded, JwksServer, chat_body, claims, es256, hs256, hs256_with, jwk, key_file,
        now, refused,
    },
    support::{send, spawn_agent, spawn_bridge_strict},
};

#[tokio::test]
async fn bearer_jwts_are_verified_claim_by_claim() {
    let edge = &Guarded::start(&[]).await;
    let post = |auth: Option<String>| async move {
        let credential = auth.as_deref().map(|auth| ("authorization", auth));
        edge.chat("assistant", credential).await
    };

    let ok = post(Some(format!("Bearer {}", hs256(&claims("alice"))))).await;
    assert_eq!(ok.status(), 200);

    let missing = post(None).await;
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    refused(missing, 401, "unauthenticated").await;

    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 3600);
    let mut not_yet = claims("alice");
    not_yet["nbf"] = json!(now() + 3600);
    let mut audience = claims("alice");
    audience["aud"] = json!("someone-else");
    let mut issuer = claims("alice");
    issuer["iss"] = json!("https://evil.test");
    let mut no_exp = claims("alice");
    no_exp.as_object_mut().unwrap().remove("exp");
    let b64 = |v: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims("alice"))
    );
    let cases = [
        ("malformed", "Bearer not-a-jwt".to_owned(), "well-formed"),
        (
            "not bearer",
            format!("Basic {}", hs256(&claims("alice"))),
            "Bearer",
        ),
        ("expired", format!("Bearer {}", hs256(&expired)), "expired"),
        (
            "not yet valid",
            format!("Bearer {}", hs256(&not_yet)),
            "not valid yet",
        ),
        (
            "wrong audience",
            format!("Bearer {}", hs256(&audience)),
            "audience",
        ),
        (
            "wrong issuer",
            format!("Bearer {}", hs256(&issuer)),
            "issuer",
        ),
        ("no exp", format!("Bearer {}", hs256(&no_exp)), "exp"),
        (
            "wrong signature",
            format!(
                "Bearer {}",
                hs256_with(&claims("alice"), b"another-secret-entirely")
            ),
            "signature",
        ),
        ("alg none", format!("Bearer {alg_none}"), "well-formed"),
        (
            // ES256 is not configured on this bridge (no JWKS): the token's alg cannot add it.
            "alg not configured",
            format!("Bearer {}", es256(&claims("alice"), "a", "key-a")),
            "not accepted",
        ),
    ];
    for (case, auth, detail) in cases {
        let body = refused(post(Some(auth)).await, 401, "unauthenticated").await;
        assert!(
            body["detail"].as_str().unwrap().contains(detail),
            "{case}: {body}"
        );
    }

    // A long-lived credential in the query string is refused even when it is valid.
    let chat = edge.bridge.url("/v1/agents/assistant/chat");
    let in_query = edge
        .bridge
        .http
        .post(format!("{chat}?access_token={}", hs256(&claims("alice"))))
        .json(&chat_body("hi"));
    refused(send(in_query).await, 401, "unauthenticated").await;

    assert_eq!(
        edge.agent.stats.runs_started(),
        1,
        "only the valid token reached the agent"
    );
}

#[tokio::test]
async fn api_keys_and_the_cookie_authenticate() {
    let edge = Guarded::start(&[]).await;

    let ok = edge.chat("assistant", Some(("x-api-key", API_KEY))).await;
    assert_eq!(ok.status(), 200);
    let wrong_key = format!("{API_KEY}x");
    let wrong = edge
        .chat("assistant", Some(("x-api-key", &wrong_key)))
        .await;
    refused(wrong, 401, "unauthenticated").await;

    let cookie = format!("theme=dark; bridge_token={}", hs256(&claims("bob")));
    let with_cookie = edge.chat("assistant", Some(("cookie", &cookie))).await;
    assert_eq!(with_cookie.status(), 200);
    let mut expired = claims("bob");
    expired["exp"] = json!(now() - 3600);
    let bad_cookie = format!("bridge_token={}", hs256(&expired));
    let bad = edge.chat("assistant", Some(("cookie", &bad_cookie))).await;
    refused(bad, 401, "unauthenticated").await;
    assert_eq!(edge.agent.stats.runs_started(), 2);
}

#[tokio::test]
async fn jwks_keys_rotate_without_a_restart() {
    let agent = spawn_agent().await;
    let jwks = JwksServer::start(vec![jwk("a")]).await;
    let bridge = spawn_bridge_strict(
        &[("assistant", &agent.url)],
        &["--jwks-url", &jwks.url, "--jwks-min-refresh", "0s"],
    )
    .await;
    let chat = bridge.url("/v1/agents/assistant/chat");
    let call = |token: String| {
        send(
            bridge
                .http
                .post(&chat)
                .bearer_auth(token)
                .json(&chat_body("hi")),
        )
    };

    assert_eq!(
        call(es256(&claims("alice"), "a", "key-a")).await.status(),
        200
    );
    assert_eq!(
        call(es256(&claims("alice"), "a", "key-a")).await.status(),
        200
    );
    assert_eq!(
        jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "cached"
    );

    // The IdP rotates: key b replaces key a.
    jwks.set_keys(vec![jwk("b")]);
    assert_eq!(
        call(es256(&claims("alice"), "b", "key-b")).await.status(),
        200
    );
    let old = call(es256(&claims("alice"), "a", "key-a")).await;
    refused(old, 401, "unauthenticated").await;
    // Right kid, wrong key.
    let forged = call(es256(&claims("alice"), "a", "key-b")).await;
    let body = refused(forged, 401, "unauthenticated").await;
    assert!(
        body["detail"].as_str().unwrap().contains("signature"),
        "{body}"
    );
    // Algorithm confusion: an HS256 token "signed" with the public key is not accepted.
    let confused = hs256_with(&claims("alice"), &key_file("es256-b.pub.pem"));
    refused(call(confused).await, 401, "unauthenticated").await;
    assert_eq!(agent.stats.runs_started(), 3);
}
