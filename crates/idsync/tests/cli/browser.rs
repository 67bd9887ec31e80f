//! Issue 19, item 6: the whole single sign-on once in a real browser. Headless Chromium
//! (Debian's, driven by npm playwright-core: `browser/drive.mjs`) presses a product's "Log in"
//! (npm openid-client's relying party page, `browser/product.mjs`), is sent through
//! `idsync serve` to the Graph simulator's login page (Entra's v2 sign-in, decision 0046),
//! fills it, and comes back through idsync to the product, which shows the user's group names;
//! the user, new to idsync, is then in the Crowd directory with those groups. Chromium talks
//! only to 127.0.0.1. The final page's screenshot is kept in `target/browser-artifacts/`.

use super::sso::peers::peer_modules;
use super::{free_port, idsync, serve, text, Server};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const STORE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const PRODUCT_SECRET: &str = "browser-product-secret-0123456789";
const READER: (&str, &str) = ("11111111-2222-3333-4444-555555555555", "sim-secret");
const ADMIN: (&str, &str) = ("99999999-8888-7777-6666-555555555555", "sim-admin-secret");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/browser-peer/node_modules` (playwright-core) and Debian's chromium, installed by
/// `scripts/peers` when missing.
fn browser_modules() -> PathBuf {
    let modules = root().join("target/browser-peer/node_modules");
    if !modules.join("playwright-core/package.json").exists()
        || !std::path::Path::new("/usr/bin/chromium").exists()
    {
        let status = Command::new(root().join("scripts/peers"))
            .stdout(Stdio::null())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "scripts/peers failed");
    }
    modules
}

/// A child process's stdout lines until one satisfies `done`; the process is killed on drop.
fn start_reading(mut cmd: Command, done: impl Fn(&str) -> bool) -> (Server, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let server = Server(child, None);
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "ended before it was ready: {text}");
        text.push_str(&line);
        if done(&line) {
            // Keep reading in the background, so the process never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return (server, text);
        }
    }
}

/// A user of the tenant, new: created through Graph by the admin app, in the tenant's first two
/// groups. Returns (userPrincipalName, the names of its groups, transitively: what Entra's
/// `groups` claim lists by id, as Graph's getMemberObjects answers).
fn new_user(sim: &str, tenant: &str) -> (String, Vec<String>) {
    let http = reqwest::blocking::Client::new();
    let token: Value = http
        .post(format!("{sim}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN.0),
            ("client_secret", ADMIN.1),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let upn = "pat.browser@contoso.com";
    let created: Value = http
        .post(format!("{sim}/v1.0/users"))
        .bearer_auth(token)
        .json(&json!({"displayName": "Pat Browser", "givenName": "Pat", "surname": "Browser", "userPrincipalName": upn, "mail": upn, "accountEnabled": true}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let uid = created["id"].as_str().unwrap();
    let groups: Value = http
        .get(format!("{sim}/v1.0/groups?$select=id,displayName"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let all = groups["value"].as_array().unwrap();
    for g in all.iter().take(2) {
        let r = http
            .post(format!("{sim}/v1.0/groups/{}/members/$ref", g["id"].as_str().unwrap()))
            .bearer_auth(token)
            .json(&json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{uid}")}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
    }
    let ids: Value = http
        .post(format!("{sim}/v1.0/users/{uid}/getMemberObjects"))
        .bearer_auth(token)
        .json(&json!({"securityEnabledOnly": true}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut names: Vec<String> = ids["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            let g = all.iter().find(|g| g["id"] == *id).unwrap();
            g["displayName"].as_str().unwrap().to_owned()
        })
        .collect();
    names.sort();
    assert!(names.len() >= 2, "{names:?}");
    (upn.to_owned(), names)
}

#[test]
fn browser_signs_in_from_the_products_button_to_a_provisioned_user() {
    let modules = browser_modules();
    let dir = tempfile::tempdir().unwrap();
    let (idsync_port, product_port) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{idsync_port}");

    // The company's identity provider: the Graph simulator, its sign-in's redirect URI idsync's.
    let mut sim_cmd = idsync();
    sim_cmd.args([
        "sim",
        "graph",
        "--users",
        "30",
        "--groups",
        "4",
        "--memberships",
        "60",
        "--redirect-uri",
        &format!("{issuer}/sso/upstream/entra/callback"),
        "--cert-dir",
    ]);
    sim_cmd.arg(dir.path().join("sim"));
    let (_sim, out) = start_reading(sim_cmd, |l| l.starts_with("Ctrl-C"));
    let field = |label: &str| -> String {
        let i = out.find(label).unwrap_or_else(|| panic!("{label}: {out}")) + label.len();
        out[i..].split_whitespace().next().unwrap().to_owned()
    };
    let sim = field("Microsoft Graph simulator on ");
    let tenant = field("tenant id:");
    let password = field("every user's password: ")
        .trim_end_matches(',')
        .to_owned();

    let authority = format!("{sim}/{tenant}/v2.0");
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            r#"[store]
path = "idsync.db"
secret_key = "${{env:IDSYNC_KEY}}"

[sources.entra]
type = "msgraph"
tenant = "{tenant}"
client_id = "{reader}"
client_secret = "{reader_secret}"
authority = "{sim}"
graph_url = "{sim}"
interval = "1h"

[targets.dc]
type = "crowd"

[flows.to-crowd]
source = "entra"
target = "dc"

[sso]
issuer = "{issuer}"

[sso.upstreams.entra]
style = "entra"
tenant_id = "{tenant}"
authority = "{authority}"
issuer = "{authority}"
client_id = "{reader}"
client_secret = "{reader_secret}"
source = "entra"

[sso.clients.jira]
client_id = "jira"
client_secret = "${{env:JIRA_SECRET}}"
redirect_uris = ["http://127.0.0.1:{product_port}/callback"]
upstream = "entra"
flow = "to-crowd"
"#,
            reader = READER.0,
            reader_secret = READER.1,
        ),
    )
    .unwrap();
    let env = [("IDSYNC_KEY", STORE_KEY), ("JIRA_SECRET", PRODUCT_SECRET)];
    let run = |args: &[&str]| {
        let mut cmd = idsync();
        cmd.arg("--config")
            .arg(dir.path().join("idsync.toml"))
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // The tenant read and provisioned once; the user who signs in comes after.
    let o = run(&["sync", "to-crowd"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["crowd", "app", "create", "--target", "dc", "--name", "jira"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let crowd_password = String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let _idsync = serve(dir.path(), idsync_port, &env);
    let (user, groups) = new_user(&sim, &tenant);

    // The product: openid-client behind a page with a "Log in" button.
    let mut product = Command::new("node");
    product
        .arg(root().join("crates/idsync/tests/cli/browser/product.mjs"))
        .env("PEER_MODULES", peer_modules())
        .env("PRODUCT_PORT", product_port.to_string())
        .env("OP_ISSUER", &issuer)
        .env("OP_CLIENT_ID", "jira")
        .env("OP_CLIENT_SECRET", PRODUCT_SECRET)
        .env("CROWD_URL", format!("{issuer}/crowd/dc"))
        .env("CROWD_APP", "jira")
        .env("CROWD_PASSWORD", &crowd_password);
    let (_product, _) = start_reading(product, |l| l.contains("\"url\""));

    // Chromium, from the button to the product's signed-in page.
    let artefacts = root().join("target/browser-artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let screenshot = artefacts.join("sso-signed-in.png");
    let _ = std::fs::remove_file(&screenshot);
    let o = Command::new("node")
        .arg(root().join("crates/idsync/tests/cli/browser/drive.mjs"))
        .env("BROWSER_MODULES", &modules)
        .env("PRODUCT_URL", format!("http://127.0.0.1:{product_port}/"))
        .env("SIGNIN_USER", &user)
        .env("SIGNIN_PASSWORD", &password)
        .env("SCREENSHOT", &screenshot)
        .env("USER_DATA_DIR", dir.path().join("chromium-profile"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the browser's sign-in failed: {}",
        text(&o)
    );
    let seen: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        seen["offLoopback"],
        json!([]),
        "Chromium asked for more than loopback: {seen}"
    );
    assert!(
        seen["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://127.0.0.1:{product_port}/callback")),
        "{seen}"
    );
    let pages: Vec<&str> = seen["pages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        pages
            .iter()
            .any(|p| p.starts_with(&format!("{sim}/{tenant}/oauth2/v2.0/authorize"))),
        "never at the login page: {pages:?}"
    );
    assert_eq!(seen["user"], json!(user));
    let mut shown: Vec<String> = serde_json::from_value(seen["groups"].clone()).unwrap();
    shown.sort();
    assert_eq!(shown, groups, "the product shows the group names");
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 1000),
        "no screenshot"
    );

    // The product found the user, with these groups, in its directory when the login arrived.
    let mut in_crowd: Vec<String> = serde_json::from_value(seen["inCrowd"].clone()).unwrap();
    in_crowd.sort();
    assert_eq!(
        in_crowd, groups,
        "the Crowd directory when the login arrived: {seen}"
    );
    // And still there afterwards, read by the test itself.
    let r = reqwest::blocking::Client::new()
        .get(format!(
            "{issuer}/crowd/dc/rest/usermanagement/1/user/group/nested"
        ))
        .query(&[("username", user.as_str())])
        .basic_auth("jira", Some(&crowd_password))
        .header("accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "the user is not in the Crowd directory"
    );
    let v: Value = r.json().unwrap();
    let mut crowd: Vec<String> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect();
    crowd.sort();
    assert_eq!(crowd, groups, "{v}");
}
