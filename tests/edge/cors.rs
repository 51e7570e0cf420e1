//! CORS from a real HTTP client speaking as a browser would: preflights and actual requests.

use crate::{
    fixtures::{Guarded, claims, hs256, refused},
    support::{collect_events, send},
};

const APP: &str = "https://app.example.com";

/// Asserts that the CORS header `name` lists each of `wanted`; method and header names are
/// compared without regard to case, as browsers do.
fn assert_lists(headers: &reqwest::header::HeaderMap, name: &str, wanted: &[&str]) {
    let listed = headers[name].to_str().unwrap().to_ascii_lowercase();
    for item in wanted {
        assert!(
            listed.contains(&item.to_ascii_lowercase()),
            "{name} lacks {item}: {listed}"
        );
    }
}

#[tokio::test]
async fn allowed_origins_get_cors_headers_and_others_none() {
    let edge = Guarded::start(&["--cors-origin", APP, "--cors-max-age", "5m"]).await;
    let bridge = &edge.bridge;
    let chat = bridge.url("/v1/agents/assistant/chat");
    let preflight = |origin: &str| {
        let request = bridge.http.request(reqwest::Method::OPTIONS, &chat);
        send(
            request
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
        )
    };

    let allowed = preflight(APP).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "300");
    assert_lists(h, "access-control-allow-methods", &["POST", "GET"]);
    assert_lists(
        h,
        "access-control-allow-headers",
        &["authorization", "content-type"],
    );

    for origin in ["https://evil.example.com", "http://app.example.com", "null"] {
        let denied = preflight(origin).await;
        assert!(
            denied
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin}: {:?}",
            denied.headers()
        );
    }

    // An actual (refused) request from the allowed origin: the browser may read the problem
    // and the headers a client needs.
    let actual = edge.chat("assistant", Some(("origin", APP))).await;
    assert_eq!(actual.headers()["access-control-allow-origin"], APP);
    assert_lists(
        actual.headers(),
        "access-control-expose-headers",
        &["retry-after", "ratelimit"],
    );
    refused(actual, 401, "unauthenticated").await;

    let evil = Some(("origin", "https://evil.example.com"));
    let from_evil = edge.chat("assistant", evil).await;
    assert!(
        from_evil
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(edge.agent.stats.runs_started(), 0);
}

/// CORS does not cover WebSockets: the bridge itself refuses an upgrade from a browser page
/// on an origin it does not allow (cross-site WebSocket hijacking), with a problem document;
/// its own origin, the allowed ones, and clients without `Origin` pass.
#[tokio::test]
async fn websocket_upgrades_from_other_origins_are_refused() {
    use tokio_tungstenite::tungstenite::{Error, client::IntoClientRequest as _};

    let edge = Guarded::start(&["--cors-origin", APP]).await;
    let bridge = &edge.bridge;
    let ws = bridge
        .url("/v1/agents/assistant/threads/t1/ws")
        .replace("http://", "ws://");
    let cookie = format!("bridge_token={}", hs256(&claims("alice")));
    let open = |origin: Option<&str>| {
        let mut request = ws.as_str().into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("cookie", cookie.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert("origin", origin.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
    };

    let own = bridge.base.clone();
    for origin in [None, Some(APP), Some(own.as_str())] {
        let opened = open(origin).await;
        assert!(opened.is_ok(), "{origin:?}: {:?}", opened.err());
    }
    for origin in ["https://evil.example", "http://127.0.0.1:9", "null"] {
        let Err(Error::Http(response)) = open(Some(origin)).await else {
            panic!("{origin}: the upgrade was not refused with an HTTP answer");
        };
        assert_eq!(response.status(), 403, "{origin}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: serde_json::Value =
            serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
        assert_eq!(body["type"], "urn:agent-bridge:problem:forbidden", "{body}");
    }
}

/// A GET that starts a run is reachable from any page (an `<img>` will do), and the browser
/// attaches the auth cookie by itself: from another site's page such a run is refused
/// (cross-site request forgery), whatever the cookie; tickets and bearer tokens are how other
/// origins start runs. Same-origin pages, allowed origins and non-browser clients pass.
#[tokio::test]
async fn cookie_runs_started_from_other_sites_are_refused() {
    let edge = Guarded::start(&["--cors-origin", APP]).await;
    let (bridge, agent) = (&edge.bridge, &edge.agent);
    let cookie = format!("bridge_token={}", hs256(&claims("alice")));
    let start = |thread: &str, site: Option<&str>, origin: Option<&str>| {
        let mut request = bridge
            .http
            .get(bridge.url(&format!(
                "/v1/agents/assistant/threads/{thread}/stream?message=hi"
            )))
            .header("cookie", &cookie);
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        send(request)
    };

    for (thread, site, origin) in [
        ("forged-1", Some("cross-site"), None),
        ("forged-2", Some("same-site"), None),
        ("forged-3", Some("cross-site"), Some("https://evil.example")),
    ] {
        let response = start(thread, site, origin).await;
        let body = refused(response, 403, "forbidden").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("ticket") || detail.contains("origin"),
            "{body}"
        );
    }
    assert_eq!(
        agent.stats.runs_started(),
        0,
        "no forged run reached the agent"
    );

    for (thread, site, origin) in [
        ("own-page", Some("same-origin"), None),
        ("typed-url", Some("none"), None),
        ("allowed-app", Some("cross-site"), Some(APP)),
        ("service", None, None),
    ] {
        let response = start(thread, site, origin).await;
        assert_eq!(response.status(), 200, "{thread}");
        let events = collect_events(response).await;
        assert_eq!(events.last().unwrap().event, "run_completed", "{thread}");
    }
    assert_eq!(agent.stats.runs_started(), 4);
}
