//! The simulated tenant's user sign-in (decision 0046): Entra's v2 authorize endpoint with its
//! login page, the authorization code flow with PKCE, ID tokens signed with the key in the
//! tenant's JWKS and carrying Entra's claims, the group overage, and Entra's refusals.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use idsync_core::SystemClock;
use idsync_sim::graph::{self, GraphSimOptions, Kind, SignInOptions, TenantSpec};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

const REDIRECT: &str = "http://127.0.0.1:9/app/callback";

async fn sim(groups_limit: usize) -> graph::RunningGraphSim {
    let opts = GraphSimOptions {
        spec: TenantSpec {
            users: 40,
            groups: 6,
            memberships: 120,
            ..TenantSpec::default()
        },
        sign_in: SignInOptions {
            password: "Right-Passw0rd".into(),
            redirect_uris: vec![REDIRECT.into()],
            groups_limit,
        },
        ..GraphSimOptions::default()
    };
    graph::start(opts, Arc::new(SystemClock)).await.unwrap()
}

/// An enabled user with at least `n` groups (transitively): (id, userPrincipalName, groups).
fn user_with_groups(sim: &graph::RunningGraphSim, n: usize) -> (String, String, Vec<String>) {
    let t = sim.state.tenant.read().unwrap();
    t.objects(Kind::User)
        .iter()
        .filter(|(_, o)| o.props["accountEnabled"] == json!(true))
        .map(|(id, o)| {
            let upn = o.props["userPrincipalName"].as_str().unwrap().to_owned();
            (id.clone(), upn, t.transitive_member_of(id))
        })
        .find(|(_, _, g)| g.len() >= n)
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The authorize request's query with PKCE S256 for `verifier`.
fn authorize_query(verifier: &str, redirect: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", "11111111-2222-3333-4444-555555555555".into()),
        ("redirect_uri", redirect.into()),
        ("response_type", "code".into()),
        ("scope", "openid profile email".into()),
        ("state", "st-123".into()),
        ("nonce", "n-456".into()),
        (
            "code_challenge",
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        ),
        ("code_challenge_method", "S256".into()),
    ]
}

/// Signs `login` in with `password`: the answer to the login form's post.
async fn sign_in(
    sim: &graph::RunningGraphSim,
    verifier: &str,
    login: &str,
    password: &str,
) -> reqwest::Response {
    let http = http();
    let page = http
        .get(format!(
            "{}/{}/oauth2/v2.0/authorize",
            sim.root, sim.tenant_id
        ))
        .query(&authorize_query(verifier, REDIRECT))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("name=\"passwd\""), "{body}");
    let mut form = authorize_query(verifier, REDIRECT);
    form.push(("login", login.into()));
    form.push(("passwd", password.into()));
    http.post(format!("{}/{}/login", sim.root, sim.tenant_id))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// The code in a redirect to the app, after checking the state came back.
fn code_of(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status(), 302);
    let loc = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(loc.as_str().starts_with(REDIRECT), "{loc}");
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st-123");
    q["code"].clone()
}

async fn redeem(sim: &graph::RunningGraphSim, code: &str, verifier: &str) -> (u16, Value) {
    let r = http()
        .post(format!("{}/{}/oauth2/v2.0/token", sim.root, sim.tenant_id))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("client_secret", "sim-secret"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The ID token's claims, once its RS256 signature checks out with the tenant's JWKS key.
async fn verified_claims(sim: &graph::RunningGraphSim, id_token: &str) -> Value {
    let http = http();
    let config: Value = http
        .get(format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            sim.root, sim.tenant_id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = format!("{}/{}/v2.0", sim.root, sim.tenant_id);
    assert_eq!(config["issuer"], json!(issuer));
    assert_eq!(
        config["authorization_endpoint"],
        json!(format!(
            "{}/{}/oauth2/v2.0/authorize",
            sim.root, sim.tenant_id
        ))
    );
    let jwks: Value = http
        .get(config["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts: Vec<&str> = id_token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is in the JWKS");
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .expect("the ID token's signature verifies with the JWKS key");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], json!(issuer));
    claims
}

#[tokio::test]
async fn a_user_signs_in_with_the_code_flow_and_pkce_and_gets_entras_claims() {
    let sim = sim(200).await;
    let (oid, upn, mut groups) = user_with_groups(&sim, 2);
    let verifier = "a-verifier-of-enough-length-0123456789-abcdefghij";

    // A wrong password: the login page again, with Entra's error, no redirect.
    let r = sign_in(&sim, verifier, &upn, "wrong").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("AADSTS50126"));

    // A verifier that does not match the challenge: refused, and the code is spent.
    let code = code_of(&sign_in(&sim, verifier, &upn, "Right-Passw0rd").await);
    let (status, v) = redeem(&sim, &code, "another-verifier-0123456789-abcdefghijklmnop").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"], "invalid_grant");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("AADSTS501481"),
        "{v}"
    );

    let code = code_of(&sign_in(&sim, verifier, &upn.to_uppercase(), "Right-Passw0rd").await);
    let (status, v) = redeem(&sim, &code, verifier).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    let claims = verified_claims(&sim, v["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["aud"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(claims["nonce"], "n-456");
    assert_eq!(claims["oid"], json!(oid));
    assert_eq!(claims["tid"], json!(sim.tenant_id));
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["preferred_username"], json!(upn));
    assert!(
        claims["name"].is_string() && claims["email"].is_string(),
        "{claims}"
    );
    assert_ne!(
        claims["sub"],
        json!(oid),
        "sub is pairwise, not the object id"
    );
    let mut got: Vec<String> = serde_json::from_value(claims["groups"].clone()).unwrap();
    got.sort();
    groups.sort();
    assert_eq!(
        got, groups,
        "the user's security groups, transitively, by id"
    );
    assert!(claims.get("_claim_names").is_none());

    // The code again: Entra's "already redeemed".
    let (status, v) = redeem(&sim, &code, verifier).await;
    assert_eq!(status, 400);
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("AADSTS54005"),
        "{v}"
    );
}

#[tokio::test]
async fn past_the_groups_limit_the_token_names_graph_instead_of_the_groups() {
    let sim = sim(1).await;
    let (oid, upn, _) = user_with_groups(&sim, 2);
    let verifier = "another-verifier-of-enough-length-0123456789-xyz";
    let code = code_of(&sign_in(&sim, verifier, &upn, "Right-Passw0rd").await);
    let (status, v) = redeem(&sim, &code, verifier).await;
    assert_eq!(status, 200, "{v}");
    let claims = verified_claims(&sim, v["id_token"].as_str().unwrap()).await;
    assert!(claims.get("groups").is_none(), "{claims}");
    assert_eq!(claims["_claim_names"]["groups"], "src1");
    let endpoint = claims["_claim_sources"]["src1"]["endpoint"]
        .as_str()
        .unwrap();
    assert!(
        endpoint.ends_with(&format!("/users/{oid}/getMemberObjects")),
        "{endpoint}"
    );
}

#[tokio::test]
async fn unregistered_redirect_uris_and_disabled_users_are_refused() {
    let sim = sim(200).await;
    let verifier = "a-verifier-of-enough-length-0123456789-abcdefghij";
    // A redirect URI not registered: a page, never a redirect there.
    let r = http()
        .get(format!(
            "{}/{}/oauth2/v2.0/authorize",
            sim.root, sim.tenant_id
        ))
        .query(&authorize_query(verifier, "http://127.0.0.1:9/evil"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("AADSTS50011"));
    // The same on the login form's post (its hidden fields are the browser's to change).
    let (_, upn, _) = user_with_groups(&sim, 0);
    let mut form = authorize_query(verifier, "http://127.0.0.1:9/evil");
    form.push(("login", upn.clone()));
    form.push(("passwd", "Right-Passw0rd".into()));
    let r = http()
        .post(format!("{}/{}/login", sim.root, sim.tenant_id))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // A disabled account: Entra's AADSTS50057, no code.
    let id = {
        let mut t = sim.state.tenant.write().unwrap();
        let id = t
            .objects(Kind::User)
            .iter()
            .find(|(_, o)| o.props["userPrincipalName"] == json!(upn))
            .map(|(id, _)| id.clone())
            .unwrap();
        t.update(
            Kind::User,
            &id,
            json!({"accountEnabled": false})
                .as_object()
                .cloned()
                .unwrap(),
        )
        .unwrap();
        id
    };
    let r = sign_in(&sim, verifier, &upn, "Right-Passw0rd").await;
    assert_eq!(r.status(), 200, "{id}");
    assert!(r.text().await.unwrap().contains("AADSTS50057"));
}
