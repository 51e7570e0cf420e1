//! Authentication: every way a credential can be wrong is refused with 401 problem+json.

use serde_json::json;

use crate::{
    fixtures::{
        API_KEY, JwksServer, Secrets, chat_body, claims, es256, hs256, hs256_with, jwk, key_file,
        now, refused,
    },
    support::{spawn_agent, spawn_bridge_strict},
};

#[tokio::test]
async fn bearer_jwts_are_verified_claim_by_claim() {
    let agent = spawn_agent().await;
    let secrets = Secrets::new();
    let flags = secrets.auth_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let bridge = spawn_bridge_strict(&[("assistant", &agent.url)], &flags).await;
    let chat = bridge.url("/v1/agents/assistant/chat");
    let post = |auth: Option<String>| {
        let mut r = bridge.http.post(chat.clone()).json(&chat_body("hi"));
        if let Some(auth) = auth {
            r = r.header("authorization", auth);
        }
        r
    };

    let ok = post(Some(format!("Bearer {}", hs256(&claims("alice")))))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let missing = post(None).send().await.unwrap();
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
        let body = refused(
            post(Some(auth)).send().await.unwrap(),
            401,
            "unauthenticated",
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains(detail),
            "{case}: {body}"
        );
    }

    // A long-lived credential in the query string is refused even when it is valid.
    let in_query = bridge
        .http
        .post(format!("{chat}?access_token={}", hs256(&claims("alice"))))
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    refused(in_query, 401, "unauthenticated").await;

    assert_eq!(
        agent.stats.runs_started(),
        1,
        "only the valid token reached the agent"
    );
}

#[tokio::test]
async fn api_keys_and_the_cookie_authenticate() {
    let agent = spawn_agent().await;
    let secrets = Secrets::new();
    let flags = secrets.auth_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let bridge = spawn_bridge_strict(&[("assistant", &agent.url)], &flags).await;
    let chat = bridge.url("/v1/agents/assistant/chat");

    let ok = bridge
        .http
        .post(chat.clone())
        .header("x-api-key", API_KEY)
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = bridge
        .http
        .post(chat.clone())
        .header("x-api-key", format!("{API_KEY}x"))
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    refused(wrong, 401, "unauthenticated").await;

    let cookie = bridge
        .http
        .post(chat.clone())
        .header(
            "cookie",
            format!("theme=dark; bridge_token={}", hs256(&claims("bob"))),
        )
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(cookie.status(), 200);
    let mut expired = claims("bob");
    expired["exp"] = json!(now() - 3600);
    let bad_cookie = bridge
        .http
        .post(chat)
        .header("cookie", format!("bridge_token={}", hs256(&expired)))
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    refused(bad_cookie, 401, "unauthenticated").await;
    assert_eq!(agent.stats.runs_started(), 2);
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
        bridge
            .http
            .post(chat.clone())
            .bearer_auth(token)
            .json(&chat_body("hi"))
            .send()
    };

    assert_eq!(
        call(es256(&claims("alice"), "a", "key-a"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        call(es256(&claims("alice"), "a", "key-a"))
            .await
            .unwrap()
            .status(),
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
        call(es256(&claims("alice"), "b", "key-b"))
            .await
            .unwrap()
            .status(),
        200
    );
    let old = call(es256(&claims("alice"), "a", "key-a")).await.unwrap();
    refused(old, 401, "unauthenticated").await;
    // Right kid, wrong key.
    let forged = call(es256(&claims("alice"), "a", "key-b")).await.unwrap();
    let body = refused(forged, 401, "unauthenticated").await;
    assert!(
        body["detail"].as_str().unwrap().contains("signature"),
        "{body}"
    );
    // Algorithm confusion: an HS256 token "signed" with the public key is not accepted.
    let confused = hs256_with(&claims("alice"), &key_file("es256-b.pub.pem"));
    refused(call(confused).await.unwrap(), 401, "unauthenticated").await;
    assert_eq!(agent.stats.runs_started(), 3);
}
