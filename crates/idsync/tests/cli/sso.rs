//! Issue 19: single sign-on through `idsync serve`, end to end. npm oidc-provider is the
//! company's identity provider in Entra ID's style (accounts alice, with two group ids, and
//! bob) or a B2C user flow's (carol, and dave of another user flow); npm openid-client is the
//! product (`sso/product.mjs`); the browser between them is a cookie jar that follows redirects
//! by hand (`sso/peers.rs`). The user's flows provision into a SCIM service (a second idsync's
//! SCIM endpoint) and into idsync's Crowd-compatible directory before the product has its code.

#[path = "sso/hostile.rs"]
mod hostile;
#[path = "sso/limits.rs"]
mod limits;
#[path = "sso/peers.rs"]
pub mod peers;
#[path = "sso/saml.rs"]
mod saml;
#[path = "sso/saml_products.rs"]
mod saml_products;

use super::{free_port, idsync, idsync_scim_peer, text, wait_for, Server};
use peers::{product, Browser, Stop, Upstream, PRODUCT_CB, PRODUCT_SECRET};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ALICE_OID: &str = "00000000-0000-0000-0000-00000000a11c";
const GROUP_1: &str = "6f1b0c2e-0000-0000-0000-000000000001";
const GROUP_2: &str = "6f1b0c2e-0000-0000-0000-000000000002";
const STORE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const UPSTREAM_SECRET: &str = "upstream-secret-post";

/// The environment every command of these tests runs with: the secrets the config names.
fn env(scim_token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("IDSYNC_KEY", STORE_KEY.to_owned()),
        ("UPSTREAM_SECRET", UPSTREAM_SECRET.to_owned()),
        ("JIRA_SECRET", PRODUCT_SECRET.to_owned()),
        ("SCIM_TOKEN", scim_token.to_owned()),
    ]
}

/// `idsync ARGS` with the config in `dir` and the tests' secrets.
fn run_env(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = idsync();
    cmd.arg("--config").arg(dir.join("idsync.toml")).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The second line of a command's output: the secret it prints once.
fn printed_secret(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_owned()
}

/// A SCIM service to provision into: another idsync's SCIM endpoint.
struct ScimPeer {
    _server: Server,
    _dir: tempfile::TempDir,
    url: String,
    token: String,
}

impl ScimPeer {
    fn start() -> Self {
        let (server, dir, url, token) = idsync_scim_peer();
        Self {
            _server: server,
            _dir: dir,
            url,
            token,
        }
    }

    /// The user's group names in the SCIM service (None: no such user).
    fn groups_of(&self, user_name: &str) -> Option<Vec<String>> {
        let http = reqwest::blocking::Client::new();
        let get = |path: &str, query: &[(&str, &str)]| -> Value {
            http.get(format!("{}/{path}", self.url))
                .query(query)
                .bearer_auth(&self.token)
                .send()
                .unwrap()
                .json()
                .unwrap()
        };
        let users = get(
            "Users",
            &[("filter", &format!("userName eq \"{user_name}\""))],
        );
        let id = users["Resources"].as_array()?.first()?["id"]
            .as_str()?
            .to_owned();
        let groups = get("Groups", &[("count", "1000")]);
        let mut names: Vec<String> = groups["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| {
                g["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["value"] == json!(id)))
            })
            .filter_map(|g| g["displayName"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        Some(names)
    }
}

struct Setup {
    dir: tempfile::TempDir,
    issuer: String,
    crowd_app: (String, String),
    scim: ScimPeer,
    env: Vec<(&'static str, String)>,
    upstream: Option<Upstream>,
    _server: Server,
}

impl Setup {
    /// The upstream in `style`, a SCIM service, then `idsync serve` with `[sso]`: product
    /// `jira` signs its users in through upstream `idp` (whose settings are `upstream`) into
    /// source `web` (`source`: its table's lines), flow `to-crowd` gives it its groups (with
    /// the group rules `crowd_groups`), flow `to-scim` provisions into the SCIM service.
    fn start(style: &str, upstream: &str, source: &str, crowd_groups: &str) -> Self {
        let port = free_port();
        let issuer = format!("http://127.0.0.1:{port}");
        let up = Upstream::start(style, &format!("{issuer}/sso/upstream/idp/callback"));
        let block = format!(
            r#"style = "{style}"
authority = "{authority}"
issuer = "{authority}"
client_id = "idsync"
client_secret = "${{env:UPSTREAM_SECRET}}"
source = "web"
{upstream}"#,
            authority = up.issuer
        );
        Self::build(port, &block, Some(up), &[], source, crowd_groups, "")
    }

    /// `idsync serve` with `[sso.upstreams.idp]` = `block`, `files` written beside the config.
    fn build(
        port: u16,
        block: &str,
        up: Option<Upstream>,
        files: &[(&str, &str)],
        source: &str,
        crowd_groups: &str,
        extra: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let issuer = format!("http://127.0.0.1:{port}");
        let scim = ScimPeer::start();
        let names = format!(
            "names = {{ \"{GROUP_1}\" = \"jira-users\", \"{GROUP_2}\" = \"jira-admins\" }}"
        );
        std::fs::write(
            dir.path().join("idsync.toml"),
            format!(
                r#"[store]
path = "idsync.db"
secret_key = "${{env:IDSYNC_KEY}}"

[server]
scim_rate = 0

[sources.web]
{source}
login_wait = "20s"

[targets.dc]
type = "crowd"

[targets.scim]
type = "scim"
url = "{scim_url}"
token = "${{env:SCIM_TOKEN}}"

[flows.to-crowd]
source = "web"
target = "dc"

[[flows.to-crowd.scope]]
clauses = [{{ attribute = "userName", operator = "not_equals", value = "bob@contoso.example" }}]

[flows.to-crowd.groups]
{names}
{crowd_groups}

[flows.to-scim]
source = "web"
target = "scim"

[flows.to-scim.groups]
{names}

[sso]
issuer = "{issuer}"

[sso.upstreams.idp]
{block}

[sso.clients.jira]
client_id = "jira"
client_secret = "${{env:JIRA_SECRET}}"
redirect_uris = ["{PRODUCT_CB}"]
upstream = "idp"
flow = "to-crowd"
{extra}
"#,
                scim_url = scim.url,
            ),
        )
        .unwrap();
        let env = env(&scim.token);
        let o = run_env(dir.path(), &env, &["config", "check"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let password = printed_secret(&run_env(
            dir.path(),
            &env,
            &["crowd", "app", "create", "--target", "dc", "--name", "jira"],
        ));
        let server = serve_logged(dir.path(), port, &env);
        Setup {
            dir,
            issuer,
            crowd_app: ("jira".to_owned(), password),
            scim,
            env,
            upstream: up,
            _server: server,
        }
    }

    fn entra(source: &str) -> Self {
        Self::start(
            "entra",
            &format!("tenant_id = \"{TENANT}\""),
            source,
            "default_groups = [\"jira-software-users\"]",
        )
    }

    /// The product starts a sign-in; the browser goes through idsync and the upstream as
    /// `login`. The browser is returned for what it saw.
    fn sign_in(&self, login: &str) -> (Value, Stop, Browser) {
        let started = product(&self.issuer, "start", &[]).expect("the product's discovery");
        let mut browser = Browser::new();
        let stop = browser.sign_in(started["url"].as_str().unwrap(), login, &self.issuer);
        (started, stop, browser)
    }

    /// The product redeems the code of `callback` and reads userinfo.
    fn finish(&self, started: &Value, callback: &str) -> Result<Value, String> {
        product(
            &self.issuer,
            "finish",
            &[
                ("PRODUCT_CALLBACK", callback),
                ("PRODUCT_VERIFIER", started["verifier"].as_str().unwrap()),
                ("PRODUCT_STATE", started["state"].as_str().unwrap()),
                ("PRODUCT_NONCE", started["nonce"].as_str().unwrap()),
            ],
        )
    }

    /// The user's direct groups in idsync's Crowd-compatible directory, read as a product
    /// reads them (None: no such user).
    fn crowd_groups(&self, user_name: &str) -> Option<Vec<String>> {
        let http = reqwest::blocking::Client::new();
        let base = format!("{}/crowd/dc/rest/usermanagement/1", self.issuer);
        let (app, password) = &self.crowd_app;
        let get = |path: &str| {
            http.get(format!("{base}/{path}"))
                .query(&[("username", user_name)])
                .basic_auth(app, Some(password))
                .header("Accept", "application/json")
                .send()
                .unwrap()
        };
        let user = get("user");
        if user.status().as_u16() == 404 {
            return None;
        }
        assert_eq!(user.status().as_u16(), 200, "{}", user.text().unwrap());
        let groups: Value = get("user/group/direct").json().unwrap();
        let mut names: Vec<String> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        Some(names)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }
}

/// `idsync serve` on `port`, its log (stderr) in `serve.log`, answering /healthz.
fn serve_logged(dir: &Path, port: u16, env: &[(&str, String)]) -> Server {
    let mut cmd = idsync();
    cmd.arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(dir.join("serve.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("serve.log")).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().unwrap(), Some(dir.join("serve.log")));
    let http = reqwest::blocking::Client::new();
    wait_for("healthz", || {
        http.get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    server
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = serde_json::from_value(v.clone()).unwrap_or_default();
    out.sort();
    out
}

fn page(stop: Stop, what: &str) -> (u16, String) {
    match stop {
        Stop::Page { status, body } => (status, body),
        Stop::AtProduct(url) => panic!("{what}: sent back to the product ({url})"),
    }
}

#[test]
fn an_entra_sign_in_provisions_the_user_into_scim_and_crowd_before_the_product_gets_group_names() {
    let s = Setup::entra("type = \"login\"");
    assert_eq!(s.crowd_groups("alice@contoso.example"), None);
    assert_eq!(s.scim.groups_of("alice@contoso.example"), None);

    let (started, stop, _) = s.sign_in("alice");
    let Stop::AtProduct(callback) = stop else {
        panic!("alice was not sent back to the product: {stop:?}");
    };
    // The product has its code but has not redeemed it: alice is already in both targets,
    // with her groups by name (the crowd flow adds its default group).
    assert_eq!(
        s.crowd_groups("alice@contoso.example"),
        Some(vec![
            "jira-admins".to_owned(),
            "jira-software-users".to_owned(),
            "jira-users".to_owned()
        ])
    );
    assert_eq!(
        s.scim.groups_of("alice@contoso.example"),
        Some(vec!["jira-admins".to_owned(), "jira-users".to_owned()])
    );

    let got = s
        .finish(&started, &callback)
        .expect("the product's code redemption");
    let claims = &got["claims"];
    assert_eq!(claims["iss"], json!(s.issuer));
    assert_eq!(claims["aud"], json!("jira"));
    assert_eq!(claims["sub"], json!("alice@contoso.example"));
    assert_eq!(claims["preferred_username"], json!("alice@contoso.example"));
    assert_eq!(claims["email"], json!("alice@contoso.example"));
    assert_eq!(claims["name"], json!("Alice Liddell"));
    assert_eq!(
        sorted(&claims["groups"]),
        ["jira-admins", "jira-software-users", "jira-users"],
        "the product flow's group names, not the ids"
    );
    assert_eq!(
        sorted(&got["userinfo"]["groups"]),
        sorted(&claims["groups"])
    );
    assert_eq!(got["userinfo"]["sub"], claims["sub"]);

    // The same code again: refused (and the tokens it gave are revoked).
    let replay = s
        .finish(&started, &callback)
        .expect_err("a replayed code must be refused");
    assert!(replay.contains("invalid_grant"), "{replay}");

    // The admin's log has the sign-in's times, and they add up: the wait for the flows is part
    // of the just-in-time provisioning, which with the upstream's part is within the whole.
    let line = wait_for("the sign-in's times in the log", || {
        s.log()
            .lines()
            .find(|l| l.contains("signed in: back to the product"))
            .map(str::to_owned)
    });
    let field = |key: &str| -> f64 {
        let at = line
            .find(&format!(" {key}="))
            .unwrap_or_else(|| panic!("no {key} in {line}"));
        line[at + key.len() + 2..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} is not a number in {line}"))
    };
    let (upstream, provision, flows, total) = (
        field("upstream_ms"),
        field("provision_ms"),
        field("flows_ms"),
        field("total_ms"),
    );
    assert!(upstream > 0.0 && flows > 0.0, "{line}");
    assert!(flows <= provision, "{line}");
    assert!(upstream + provision <= total, "{line}");
    assert!(line.contains(" upstream=idp "), "{line}");
}

#[test]
fn a_b2c_sign_in_takes_the_first_of_emails_and_another_user_flows_token_is_refused() {
    let s = Setup::start(
        "b2c",
        "policy = \"B2C_1_signin\"\nscopes = [\"profile\"]",
        "type = \"login\"",
        "default_groups = [\"customers\"]",
    );
    let (started, stop, _) = s.sign_in("carol");
    let Stop::AtProduct(callback) = stop else {
        panic!("carol was not sent back to the product: {stop:?}");
    };
    // B2C sends no groups: the flow's default group is all she has.
    assert_eq!(
        s.crowd_groups("carol@example.org"),
        Some(vec!["customers".to_owned()])
    );
    assert_eq!(s.scim.groups_of("carol@example.org"), Some(vec![]));
    let got = s.finish(&started, &callback).expect("the product's code");
    let claims = &got["claims"];
    assert_eq!(claims["sub"], json!("carol@example.org"));
    assert_eq!(claims["email"], json!("carol@example.org"));
    assert_eq!(claims["name"], json!("Carol Customer"));
    assert_eq!(sorted(&claims["groups"]), ["customers"]);

    // dave's token names another user flow of the tenant: refused, never provisioned.
    let (_, stop, _) = s.sign_in("dave");
    let (status, body) = page(stop, "dave of another user flow");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Sign-in failed"), "{body}");
    assert!(body.contains("B2C_1_other_flow"), "{body}");
    assert_eq!(s.crowd_groups("dave@example.org"), None);
}

#[test]
fn a_scoped_out_user_is_refused_with_a_page_that_says_why_and_a_log_entry() {
    let s = Setup::entra("type = \"login\"");
    // bob is outside the product flow's scope: a page that says why, no redirect.
    let (_, stop, _) = s.sign_in("bob");
    let (status, body) = page(stop, "bob, scoped out");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Sign-in refused"), "{body}");
    assert!(body.contains("to-crowd"), "the page names the flow: {body}");
    assert_eq!(s.crowd_groups("bob@contoso.example"), None);
    wait_for("the refusal in the log", || {
        let log = s.log();
        (log.contains("sign-in refused") && log.contains("to-crowd")).then_some(())
    });
}

#[test]
fn a_user_disabled_in_the_directory_is_refused_at_sign_in() {
    // A SCIM push source: HR disables alice through idsync's SCIM endpoint after her first
    // sign-in created her.
    let s = Setup::entra("type = \"scim\"");
    let (_, stop, _) = s.sign_in("alice");
    assert!(matches!(stop, Stop::AtProduct(_)), "{stop:?}");
    assert!(s.crowd_groups("alice@contoso.example").is_some());
    let token = printed_secret(&run_env(s.dir.path(), &s.env, &["token", "create", "web"]));
    let resp = reqwest::blocking::Client::new()
        .patch(format!("{}/scim/v2/web/Users/{ALICE_OID}", s.issuer))
        .bearer_auth(token)
        .json(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}]
        }))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());

    let (_, stop, _) = s.sign_in("alice");
    let (status, body) = page(stop, "a disabled alice");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("your account is disabled"), "{body}");
    wait_for("the refusal in the log", || {
        s.log().contains("your account is disabled").then_some(())
    });
}

#[test]
fn an_unregistered_redirect_uri_gets_a_page_and_never_a_redirect() {
    let s = Setup::entra("type = \"login\"");
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ask = |redirect_uri: &str| {
        http.get(format!("{}/sso/oidc/authorize", s.issuer))
            .query(&[
                ("client_id", "jira"),
                ("response_type", "code"),
                ("scope", "openid"),
                ("redirect_uri", redirect_uri),
                ("state", "s"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .unwrap()
    };
    // The registered one goes on to the identity provider.
    let ok = ask(PRODUCT_CB);
    assert_eq!(ok.status().as_u16(), 303);
    let to = ok.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with(&s.upstream.as_ref().unwrap().issuer), "{to}");
    for evil in [
        "https://attacker.example/cb",
        "http://127.0.0.1:9/jira/callback/",
        "http://127.0.0.1:9/jira/callback?x=1",
        "http://127.0.0.1:9/JIRA/callback",
        "https://x.example/<script>alert(1)</script>",
    ] {
        let resp = ask(evil);
        assert_eq!(resp.status().as_u16(), 400, "{evil}");
        assert!(resp.headers().get("location").is_none(), "{evil}");
        let body = resp.text().unwrap();
        assert!(!body.contains("<script>"), "{body}");
    }
}

#[test]
fn a_wrong_replayed_or_foreign_state_at_the_upstream_callback_is_refused() {
    let s = Setup::entra("type = \"login\"");
    let (_, stop, browser) = s.sign_in("alice");
    assert!(matches!(stop, Stop::AtProduct(_)), "{stop:?}");
    let answer = browser
        .upstream_answer
        .clone()
        .expect("the upstream's answer");
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The same answer again: its sign-in is finished.
    let again = http.get(answer.clone()).send().unwrap();
    assert_eq!(again.status().as_u16(), 400);
    assert!(again.headers().get("location").is_none());
    assert!(again.text().unwrap().contains("unknown or has expired"));

    // A state idsync never gave.
    let mut wrong = answer.clone();
    let pairs: Vec<(String, String)> = answer
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into()
            };
            (k.into_owned(), v)
        })
        .collect();
    wrong.query_pairs_mut().clear().extend_pairs(&pairs);
    let resp = http.get(wrong).send().unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none());

    // A sign-in finished in another browser than the one that started it (a link handed on):
    // refused, and the upstream's code is never redeemed for it.
    let started = product(&s.issuer, "start", &[]).unwrap();
    let mut victim = Browser::new();
    let first = victim.send(
        "GET",
        &reqwest::Url::parse(started["url"].as_str().unwrap()).unwrap(),
        &[],
    );
    assert_eq!(first.status().as_u16(), 303);
    let at_upstream = first.headers()["location"].to_str().unwrap().to_owned();
    let mut other = Browser::new();
    let stop = other.sign_in(&at_upstream, "alice", &s.issuer);
    let (status, body) = page(stop, "a sign-in finished in another browser");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("another browser"), "{body}");
}

#[test]
fn sso_endpoints_survive_hostile_input() {
    let s = Setup::entra("type = \"login\"");
    hostile::check(&s.issuer);
    // And a sign-in still works after all that.
    let (_, stop, _) = s.sign_in("alice");
    assert!(matches!(stop, Stop::AtProduct(_)), "{stop:?}");
}

#[test]
fn sso_configuration_errors_name_their_key_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    // The sections' own errors.
    let toml = r#"[store]
path = "idsync.db"

[sources.entra]
type = "scim"

[targets.app]
type = "test"
journal = "t.jsonl"

[flows.to-app]
source = "entra"
target = "app"

[sso]
issuer = "http://idsync.example.com"
key_overlap = "1m"
saml_key_rotation = "10d"
saml_key_overlap = "5d"
sign_in_rate = -1
sign_in_burst = 0
max_pending_sign_ins = "many"

[sso.upstreams.entra]
style = "b2c"
client_id = "idsync"
client_secret = "${env:NO_SUCH_VARIABLE_FOR_SSO}"
source = "entra"

[sso.clients.jira]
client_id = "jira"
client_secret = "short"
redirect_uris = ["https://jira.example.com/cb#frag"]
upstream = "entra"
flow = "to-app"
colour = "blue"
"#;
    expect_errors(
        dir.path(),
        toml,
        &[
            (16, "sso.issuer"),
            (17, "sso.key_overlap"),
            (19, "sso.saml_key_overlap"),
            (20, "sso.sign_in_rate"),
            (21, "sso.sign_in_burst"),
            (22, "sso.max_pending_sign_ins"),
            (24, "sso.upstreams.entra.policy"),
            (27, "sso.upstreams.entra.client_secret"),
            (32, "sso.clients.jira.client_secret"),
            (33, "sso.clients.jira.redirect_uris[0]"),
            (36, "sso.clients.jira.colour"),
        ],
    );
    // What the sections name: a source that takes no logins, an unknown upstream, a flow of
    // another source, and no secret key to seal the signing keys with.
    let toml = r#"[store]
path = "idsync.db"

[sources.hr]
type = "file"
path = "people.json"

[sources.web]
type = "login"

[targets.app]
type = "test"
journal = "t.jsonl"

[flows.to-app]
source = "web"
target = "app"

[sso]
issuer = "https://idsync.example.com"

[sso.upstreams.entra]
style = "entra"
tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
client_id = "idsync"
client_secret = "upstream-secret"
source = "hr"

[sso.clients.jira]
client_id = "jira"
client_secret = "0123456789abcdef0123"
redirect_uris = ["https://jira.example.com/plugins/servlet/oidc/callback"]
upstream = "okta"
flow = "to-app"

[sso.clients.confluence]
client_id = "confluence"
client_secret = "0123456789abcdef0123"
redirect_uris = ["https://confluence.example.com/plugins/servlet/oidc/callback"]
upstream = "entra"
flow = "to-app"
"#;
    expect_errors(
        dir.path(),
        toml,
        &[
            (19, "store.secret_key"),
            (27, "sso.upstreams.entra.source"),
            (33, "sso.clients.jira.upstream"),
            (41, "sso.clients.confluence.flow"),
        ],
    );
}

fn expect_errors(dir: &Path, toml: &str, expected: &[(usize, &str)]) {
    std::fs::write(dir.join("idsync.toml"), toml).unwrap();
    let o = run_env(dir, &[], &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = text(&o);
    for (line, key) in expected {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("idsync.toml:{line}:")) && l.contains(key)),
            "no error at line {line} for {key}:\n{out}"
        );
    }
}
