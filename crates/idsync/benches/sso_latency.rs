//! idsync's own time in a single sign-on through `idsync serve` (issue 19's figures, decision
//! 0045): the whole OpenID dance a product's browser makes, 50 sign-ins in flight, p50 and p99.
//!
//! `cargo bench -p idsync --bench sso_latency` (rounds per phase IDSYNC_BENCH_ROUNDS, default
//! 4; sign-ins in flight IDSYNC_BENCH_INFLIGHT, default 50).
//!
//! Processes, all on 127.0.0.1: the upstream identity provider is `idsync sim graph` (Entra's
//! v2 sign-in: a login page with the printed password, code + PKCE, RS256 ID tokens with the
//! `groups` claim); idsync is `idsync serve` with `[sso]`, the simulated tenant as the upstream
//! of its msgraph source `entra`, one product (`jira`) registered, and two flows from `entra`:
//! into a SCIM target (a second `idsync serve`, a SCIM push directory: the stand-in for
//! Atlassian Cloud) and into a served `crowd` target (the Crowd-compatible directory).
//!
//! Each sign-in has its own HTTP client and cookie jar and follows the redirects by hand: the
//! product's authorization request at idsync, the tenant's login page, the login POST, the
//! callback at idsync, the redirect back to the product with its code, then the product's token
//! exchange at idsync. Signed in: new users (created in the tenant through Graph first, each in
//! two groups) and, in the next round, the same users again (returning).
//!
//! idsync's own time in the callback is the callback request's time (measured here) minus the
//! time idsync waited on the upstream in it (the code exchange, and the keys or discovery when
//! new). That wait is read from idsync's JSON log (`[log] format = "json"`): the callback's last
//! line, "signed in: back to the product", carries `upstream_ms`, `provision_ms`, `flows_ms` and
//! `total_ms` (also useful to admins). Timing the simulator's side instead would miss the
//! connection set-up and the reading of the answer, which idsync spends waiting too.
//!
//! With and without provisioning: the source's `login_wait` is 60 s, so each callback answers
//! once both flows' runs for the user have finished (the user in the SCIM target and the Crowd
//! directory, with groups). The configuration cannot make the same sign-in skip provisioning:
//! `login_wait` is at least 1 s, which outlasts a run (the login waits for each flow's run up
//! to that deadline), and the product's flow must be one of the user's flows (a disabled flow
//! does not run at login, and then the sign-in is refused). So the log line also carries
//! `flows_ms`, the time the login waited for the runs, and "without provisioning" is idsync's
//! own time minus it: the state and cookie checks, the ID token's verification, the
//! directory's update (the user, names, memberships), the refusal checks, the product's code.
//!
//! Printed with the machine.

mod common;
mod services;

use common::{env_usize, machine, percentile};
use serde_json::{json, Value};
use services::{free_port, scim_service, serve, Kill};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STORE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const PRODUCT_SECRET: &str = "bench-product-secret-0123456789";
const READER: (&str, &str) = ("11111111-2222-3333-4444-555555555555", "sim-secret");
const ADMIN: (&str, &str) = ("99999999-8888-7777-6666-555555555555", "sim-admin-secret");
const ENV: [(&str, &str); 2] = [("IDSYNC_KEY", STORE_KEY), ("JIRA_SECRET", PRODUCT_SECRET)];

type Error = Box<dyn std::error::Error>;

/// `idsync sim graph`, its sign-ins returning to `redirect_uri`: (process, root, tenant id,
/// password).
fn start_sim(dir: &Path, redirect_uri: &str) -> Result<(Kill, String, String, String), Error> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(["sim", "graph", "--users", "50", "--groups", "10"])
        .args(["--memberships", "100", "--redirect-uri", redirect_uri])
        .arg("--cert-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let kill = Kill(child);
    let mut text = String::new();
    let mut lines = BufReader::new(out).lines();
    for line in lines.by_ref() {
        let line = line?;
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    // Keep reading, so that the simulator never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let field = |label: &str| -> Result<String, String> {
        let i = text
            .find(label)
            .ok_or_else(|| format!("the simulator printed no {label:?}: {text}"))?
            + label.len();
        Ok(text[i..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_end_matches(',')
            .to_string())
    };
    let root = field("Microsoft Graph simulator on ")?;
    let tenant = field("tenant id:")?;
    let password = field("every user's password: ")?;
    Ok((kill, root, tenant, password))
}

/// `n` new users in the tenant, each in two of its groups, through Graph (the admin app).
/// Their (id, userPrincipalName).
async fn new_users(
    http: &reqwest::Client,
    sim: &str,
    tenant: &str,
    tag: &str,
    n: usize,
) -> Result<Vec<(String, String)>, Error> {
    let token: Value = http
        .post(format!("{sim}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN.0),
            ("client_secret", ADMIN.1),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"].as_str().ok_or("no admin token")?;
    let groups: Value = http
        .get(format!("{sim}/v1.0/groups?$select=id"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let groups: Vec<String> = groups["value"]
        .as_array()
        .ok_or("no groups")?
        .iter()
        .filter_map(|g| g["id"].as_str().map(str::to_string))
        .collect();
    if groups.len() < 2 {
        return Err("the tenant has fewer than two groups".into());
    }
    let mut users = Vec::new();
    for i in 0..n {
        let upn = format!("sso.{tag}.{i}@contoso.com");
        let created: Value = http
            .post(format!("{sim}/v1.0/users"))
            .bearer_auth(token)
            .json(&json!({"displayName": format!("Bench {tag} {i}"), "givenName": "Bench", "surname": format!("{tag} {i}"), "userPrincipalName": upn, "mail": upn, "accountEnabled": true}))
            .send()
            .await?
            .json()
            .await?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| format!("user not created: {created}"))?
            .to_string();
        for g in [&groups[i % groups.len()], &groups[(i + 1) % groups.len()]] {
            let r = http
                .post(format!("{sim}/v1.0/groups/{g}/members/$ref"))
                .bearer_auth(token)
                .json(&json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")}))
                .send()
                .await?;
            if r.status().as_u16() != 204 {
                return Err(format!("adding a member: {}", r.status()).into());
            }
        }
        users.push((id, upn));
    }
    Ok(users)
}

/// A browser's cookies for one sign-in: name, value and path (the hosts are all 127.0.0.1;
/// the ports are told apart by the cookies' paths, which differ).
#[derive(Default)]
struct Jar(Vec<(String, String, String)>);

impl Jar {
    fn take(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let path = parts
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case("path"))
                .map_or("/", |(_, p)| p)
                .to_string();
            self.0.retain(|(n, _, p)| !(n == name && *p == path));
            if !value.is_empty() {
                self.0.push((name.to_string(), value.to_string(), path));
            }
        }
    }

    fn header(&self, url: &reqwest::Url) -> String {
        self.0
            .iter()
            .filter(|(_, _, p)| url.path().starts_with(p.as_str()))
            .map(|(n, v, _)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn location(resp: &reqwest::Response) -> Result<String, String> {
    if !resp.status().is_redirection() {
        return Err(format!("expected a redirect, got {}", resp.status()));
    }
    resp.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| "a redirect without Location".into())
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the login page's form.
fn hidden_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|rest| {
            let name = rest.strip_prefix("name=\"")?.split('"').next()?;
            let value = rest.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_string(), unescape(value)))
        })
        .collect()
}

/// One sign-in's figures, in ms.
struct SignIn {
    subject: String,
    callback: f64,
    token: f64,
    whole: f64,
}

struct Setup {
    issuer: String,
    sim: String,
    tenant: String,
    password: String,
    product_redirect: String,
}

/// One sign-in of `upn` (tenant object id `id`), from the product's authorization request to
/// its token exchange.
async fn sign_in(s: &Setup, id: &str, upn: &str) -> Result<SignIn, String> {
    let e = |e: reqwest::Error| e.to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(e)?;
    let mut jar = Jar::default();
    let began = Instant::now();
    let (state, nonce, verifier) = (
        idsync_oidc::random_token(),
        idsync_oidc::random_token(),
        idsync_oidc::random_token(),
    );
    let mut authorize = reqwest::Url::parse(&format!("{}/sso/oidc/authorize", s.issuer))
        .map_err(|e| e.to_string())?;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "jira")
        .append_pair("redirect_uri", &s.product_redirect)
        .append_pair("scope", "openid profile email")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &idsync_oidc::pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let r = http.get(authorize).send().await.map_err(e)?;
    jar.take(&r);
    let at_upstream = location(&r)?;
    let r = http.get(&at_upstream).send().await.map_err(e)?;
    jar.take(&r);
    if !r.status().is_success() {
        return Err(format!("the login page: {}", r.status()));
    }
    let page = r.text().await.map_err(e)?;
    let mut form = hidden_fields(&page);
    form.push(("login".into(), upn.into()));
    form.push(("passwd".into(), s.password.clone()));
    let r = http
        .post(format!("{}/{}/login", s.sim, s.tenant))
        .form(&form)
        .send()
        .await
        .map_err(e)?;
    jar.take(&r);
    let callback = reqwest::Url::parse(&location(&r)?).map_err(|e| e.to_string())?;
    let cookies = jar.header(&callback);
    let t = Instant::now();
    let r = http
        .get(callback)
        .header(reqwest::header::COOKIE, cookies)
        .send()
        .await
        .map_err(e)?;
    let back = location(&r);
    let _ = r.bytes().await;
    let callback_ms = ms(t.elapsed());
    let back = reqwest::Url::parse(&back?).map_err(|e| e.to_string())?;
    if !back.as_str().starts_with(&s.product_redirect) {
        return Err(format!("sent elsewhere: {back}"));
    }
    let q: HashMap<String, String> = back.query_pairs().into_owned().collect();
    if q.get("state") != Some(&state) {
        return Err(format!("back without the product's state: {back}"));
    }
    let code = q.get("code").ok_or_else(|| format!("no code: {back}"))?;
    let t = Instant::now();
    let r = http
        .post(format!("{}/sso/oidc/token", s.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", s.product_redirect.as_str()),
            ("client_id", "jira"),
            ("client_secret", PRODUCT_SECRET),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .map_err(e)?;
    let status = r.status();
    let body: Value = r.json().await.map_err(e)?;
    let token_ms = ms(t.elapsed());
    if !status.is_success() || body["id_token"].as_str().is_none() {
        return Err(format!("the token exchange: {status} {body}"));
    }
    Ok(SignIn {
        subject: id.to_string(),
        callback: callback_ms,
        token: token_ms,
        whole: ms(began.elapsed()),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The "signed in: back to the product" lines of idsync's JSON log after line `skip`: their
/// fields by subject.
fn log_lines(log: &Path, skip: usize) -> Result<(usize, HashMap<String, Value>), Error> {
    let text = std::fs::read_to_string(log)?;
    let mut by_subject = HashMap::new();
    let mut n = 0;
    for line in text.lines() {
        n += 1;
        if n <= skip {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let f = &v["fields"];
        if f["message"] == "signed in: back to the product" {
            if let Some(s) = f["subject"].as_str() {
                by_subject.insert(s.to_string(), f.clone());
            }
        }
    }
    Ok((n, by_subject))
}

/// How many "provisioned at sign-in" lines after line `skip` say the flow's run finished.
fn finished_runs(log: &Path, skip: usize) -> Result<usize, Error> {
    let text = std::fs::read_to_string(log)?;
    Ok(text
        .lines()
        .skip(skip)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "provisioned at sign-in")
        .filter(|v| {
            v["fields"]["run"]
                .as_str()
                .is_some_and(|r| r.starts_with("Finished"))
        })
        .count())
}

#[derive(Default)]
struct Figures {
    own: Vec<f64>,
    nowait: Vec<f64>,
    callback: Vec<f64>,
    upstream: Vec<f64>,
    provision: Vec<f64>,
    token: Vec<f64>,
    whole: Vec<f64>,
    failed: usize,
    finished: usize,
}

fn line(name: &str, v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{name} p50 {:.1} ms, p99 {:.1} ms",
        percentile(v, 0.5),
        percentile(v, 0.99)
    )
}

impl Figures {
    fn print(&mut self, title: &str) {
        println!(
            "  {title} ({} sign-ins, {} failed; {} with the product's flow run finished at the answer):",
            self.own.len(),
            self.failed,
            self.finished
        );
        println!(
            "    idsync's own time in the callback, with provisioning:{}",
            line("", &mut self.own)
        );
        println!(
            "    idsync's own time in the callback, without provisioning (minus the wait for the runs):{}",
            line("", &mut self.nowait)
        );
        println!(
            "    (callback{}; upstream wait{}; just in time{})",
            line("", &mut self.callback),
            line("", &mut self.upstream),
            line("", &mut self.provision)
        );
        println!(
            "    product's token exchange:{}; whole sign-in{}",
            line("", &mut self.token),
            line("", &mut self.whole)
        );
    }
}

/// `users` signing in at once; their figures joined with idsync's log.
async fn round(
    s: &std::sync::Arc<Setup>,
    log: &Path,
    users: &[(String, String)],
    into: &mut Figures,
) -> Result<(), Error> {
    let (skip, _) = log_lines(log, usize::MAX)?;
    let tasks: Vec<_> = users
        .iter()
        .cloned()
        .map(|(id, upn)| {
            let s = s.clone();
            tokio::spawn(async move { sign_in(&s, &id, &upn).await })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(x)) => done.push(x),
            Ok(Err(e)) => {
                eprintln!("sign-in failed: {e}");
                into.failed += 1;
            }
            Err(e) => {
                eprintln!("sign-in task failed: {e}");
                into.failed += 1;
            }
        }
    }
    let (_, lines) = log_lines(log, skip)?;
    into.finished += finished_runs(log, skip)?;
    for x in done {
        let Some(f) = lines.get(&x.subject) else {
            eprintln!("no log line for {}", x.subject);
            into.failed += 1;
            continue;
        };
        let upstream = f["upstream_ms"].as_f64().unwrap_or(0.0);
        into.own.push(x.callback - upstream);
        into.nowait
            .push(x.callback - upstream - f["flows_ms"].as_f64().unwrap_or(0.0));
        into.callback.push(x.callback);
        into.upstream.push(upstream);
        into.provision
            .push(f["provision_ms"].as_f64().unwrap_or(0.0));
        into.token.push(x.token);
        into.whole.push(x.whole);
    }
    Ok(())
}

fn config(s: &Setup, port: u16, scim_url: &str, scim_token: &str) -> String {
    let (sim, tenant, issuer) = (&s.sim, &s.tenant, &s.issuer);
    let authority = format!("{sim}/{tenant}/v2.0");
    format!(
        r#"[store]
path = "idsync.db"
secret_key = "${{env:IDSYNC_KEY}}"
[server]
listen = "127.0.0.1:{port}"
[log]
level = "info"
format = "json"

[sources.entra]
type = "msgraph"
tenant = "{tenant}"
client_id = "{reader}"
client_secret = "{reader_secret}"
authority = "{sim}"
graph_url = "{sim}"
interval = "24h"
login_wait = "60s"

[targets.cloud]
type = "scim"
url = "{scim_url}"
token = "{scim_token}"

[targets.dc]
type = "crowd"

[flows.to-cloud]
source = "entra"
target = "cloud"

[flows.to-crowd]
source = "entra"
target = "dc"

[sso]
issuer = "{issuer}"
# Every sign-in comes from 127.0.0.1: the per-address limit of sign-ins started is off.
sign_in_rate = 0

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
redirect_uris = ["{redirect}"]
upstream = "entra"
flow = "to-crowd"
"#,
        reader = READER.0,
        reader_secret = READER.1,
        redirect = s.product_redirect,
    )
}

fn idsync(dir: &Path, args: &[&str]) -> Result<(), Error> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idsync"));
    cmd.arg("-c").arg(dir.join("idsync.toml")).args(args);
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "idsync {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let rounds = env_usize("IDSYNC_BENCH_ROUNDS", 4);
    let inflight = env_usize("IDSYNC_BENCH_INFLIGHT", 50);
    let dir = tempfile::tempdir()?;
    let (port, product_port) = (free_port()?, free_port()?);
    let issuer = format!("http://127.0.0.1:{port}");
    let (_sim, sim, tenant, password) = start_sim(
        &dir.path().join("sim"),
        &format!("{issuer}/sso/upstream/entra/callback"),
    )?;
    let (_cloud, cloud_port, scim_token) = scim_service(&dir.path().join("cloud"), "cloud", "")?;
    let scim_url = format!("http://127.0.0.1:{cloud_port}/scim/v2/cloud");
    let s = std::sync::Arc::new(Setup {
        issuer,
        sim,
        tenant,
        password,
        product_redirect: format!("http://127.0.0.1:{product_port}/callback"),
    });
    let http = reqwest::Client::new();
    let idsync_dir = dir.path().join("idsync");
    std::fs::create_dir_all(&idsync_dir)?;
    let log = idsync_dir.join("serve.log");
    println!("machine: {}", machine());

    std::fs::write(
        idsync_dir.join("idsync.toml"),
        config(&s, port, &scim_url, &scim_token),
    )?;
    // The tenant read and provisioned once: the users who sign in come after.
    idsync(&idsync_dir, &["sync", "to-cloud"])?;
    idsync(&idsync_dir, &["sync", "to-crowd"])?;
    let _serve = serve(
        &idsync_dir,
        port,
        &ENV,
        Stdio::from(std::fs::File::create(&log)?),
    )?;
    // One sign-in first (discovery, keys, connections), not counted.
    let warm = new_users(&http, &s.sim, &s.tenant, "warm", 1).await?;
    round(&s, &log, &warm, &mut Figures::default()).await?;
    let (mut new, mut returning) = (Figures::default(), Figures::default());
    for r in 0..rounds {
        let users = new_users(&http, &s.sim, &s.tenant, &format!("r{r}"), inflight).await?;
        round(&s, &log, &users, &mut new).await?;
        round(&s, &log, &users, &mut returning).await?;
    }
    let v: Value = http
        .get(format!("{scim_url}/Users?count=1"))
        .bearer_auth(&scim_token)
        .send()
        .await?
        .json()
        .await?;
    println!(
        "{inflight} sign-ins in flight, {rounds} rounds, login_wait 60 s; flows into a SCIM target (idsync serve, own process; it holds {} users) and a served crowd target:",
        v["totalResults"]
    );
    new.print("new users (created in the tenant, two groups)");
    returning.print("returning users (the same users again)");
    Ok(())
}
