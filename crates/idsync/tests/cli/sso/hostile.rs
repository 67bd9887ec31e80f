//! What a stranger can send the single sign-on endpoints: broken encodings, missing and
//! repeated parameters, bodies and headers of every wrong shape, oversized bodies. None may
//! be a server error (5xx) or stop the server; each is refused with a 4xx.

/// Sends every hostile request to idsync at `issuer` and checks its answer.
pub fn check(issuer: &str) {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let long = "a".repeat(12_000);

    // GET requests: (path and query, expected status).
    let gets: Vec<(String, u16)> = vec![
        ("/sso/oidc/authorize".into(), 400),
        ("/sso/oidc/authorize?client_id=%FF%FE".into(), 400),
        (
            "/sso/oidc/authorize?client_id=jira&client_id=jira".into(),
            400,
        ),
        (
            "/sso/oidc/authorize?client_id=nobody&redirect_uri=https://a.example/".into(),
            400,
        ),
        (
            "/sso/oidc/authorize?client_id=jira&response_type=token".into(),
            400,
        ),
        (
            format!("/sso/oidc/authorize?client_id=jira&state={long}"),
            400,
        ),
        ("/sso/oidc/authorize?%%%%=%%%&&&==".into(), 400),
        ("/sso/oidc/userinfo".into(), 401),
        ("/sso/upstream/idp/callback".into(), 400),
        (
            "/sso/upstream/idp/callback?state=never-given&code=x".into(),
            400,
        ),
        (
            "/sso/upstream/idp/callback?error=access_denied&state=x".into(),
            400,
        ),
        (
            "/sso/upstream/idp/callback?state=%00%FF&code=%00".into(),
            400,
        ),
        (format!("/sso/upstream/idp/callback?state={long}"), 400),
        ("/sso/upstream/nobody/callback?state=x".into(), 404),
        ("/sso/upstream/%FF%FE/callback?state=x".into(), 400),
        ("/sso/upstream/..%2F..%2Fhealthz/callback".into(), 404),
    ];
    for (path, expected) in &gets {
        let resp = http.get(format!("{issuer}{path}")).send().unwrap();
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").cloned();
        let body = resp.text().unwrap_or_default();
        assert_eq!(status, *expected, "GET {path}: {body}");
        assert!(location.is_none(), "GET {path} redirected to {location:?}");
    }

    // userinfo with tokens of every wrong shape.
    for auth in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer not-a-token".to_owned(),
        format!("Bearer {long}"),
        "Basic Zm9vOmJhcg==".to_owned(),
        "Bearer caf\u{e9}".to_owned(),
    ] {
        let resp = http
            .get(format!("{issuer}/sso/oidc/userinfo"))
            .header("authorization", auth.as_bytes())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "userinfo with {auth:.40}");
    }

    // The token endpoint: bodies and client credentials of every wrong shape.
    let token = format!("{issuer}/sso/oidc/token");
    let bodies: Vec<(Vec<u8>, Option<String>)> = vec![
        (Vec::new(), None),
        (b"\xff\xfe\x00garbage".to_vec(), None),
        (b"grant_type=authorization_code".to_vec(), None),
        (
            b"grant_type=authorization_code&code=x&redirect_uri=x&code_verifier=x".to_vec(),
            // jira:wrong-secret
            Some("Basic amlyYTp3cm9uZy1zZWNyZXQ=".to_owned()),
        ),
        (
            b"grant_type=authorization_code&code=x".to_vec(),
            // not UTF-8
            Some("Basic //46AA==".to_owned()),
        ),
        (
            b"grant_type=authorization_code&code=x".to_vec(),
            Some("Basic !!!not base64!!!".to_owned()),
        ),
        (
            b"grant_type=authorization_code&code=x".to_vec(),
            // no-colon
            Some("Basic bm8tY29sb24=".to_owned()),
        ),
        (
            b"grant_type=password&username=a&password=b&client_id=jira".to_vec(),
            None,
        ),
        (
            b"grant_type=authorization_code&grant_type=refresh_token&code=x&code=y".to_vec(),
            None,
        ),
    ];
    for (body, auth) in bodies {
        let mut req = http
            .post(&token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone());
        if let Some(a) = &auth {
            req = req.header("authorization", a.as_bytes());
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        assert!(
            (400..500).contains(&status),
            "token {:?} with {auth:?}: {status} {text}",
            String::from_utf8_lossy(&body)
        );
        let answer: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("token answered no JSON ({e}): {text}"));
        assert!(answer["error"].is_string(), "{text}");
    }

    // A body over the server's limit is refused before it is read.
    let huge = vec![b'a'; 3 * 1024 * 1024];
    let fresh = || {
        reqwest::blocking::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let resp = fresh()
        .post(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send();
    if let Ok(resp) = resp {
        assert_eq!(resp.status().as_u16(), 413);
    }

    // A query over the server's limit.
    let resp = fresh()
        .get(format!(
            "{issuer}/sso/oidc/authorize?state={}",
            "b".repeat(64 * 1024)
        ))
        .send();
    if let Ok(resp) = resp {
        assert_eq!(resp.status().as_u16(), 414);
    }

    // Still serving (on new connections: the server closes one whose request it refused for
    // its size, and a pooled client may try to reuse it).
    let http = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = http.get(format!("{issuer}/healthz")).send().unwrap();
    assert!(health.status().is_success());
    let discovery: serde_json::Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(discovery["issuer"], serde_json::json!(issuer));
    let jwks: serde_json::Value = http
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty());
}
