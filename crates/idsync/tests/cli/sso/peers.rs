//! The peers of the single sign-on tests: npm oidc-provider as the company's identity provider
//! (`crates/idsync-oidc/tests/oidc/peers/upstream.mjs`, in Entra ID's or a B2C user flow's
//! style), npm openid-client as the product (`product.mjs`), and a browser: a cookie jar that
//! follows redirects by hand, so each hop is seen.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Where the product would receive its code; nothing listens: the browser stops there.
pub const PRODUCT_CB: &str = "http://127.0.0.1:9/jira/callback";
pub const PRODUCT_SECRET: &str = "jira-client-secret-0123456789";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn peers() -> PathBuf {
    root().join("crates/idsync-oidc/tests/oidc/peers")
}

/// `target/oidc-peer/node_modules`, installed by `scripts/peers` when missing.
pub fn peer_modules() -> PathBuf {
    let modules = root().join("target/oidc-peer/node_modules");
    if !modules.join("oidc-provider/package.json").exists()
        || !modules.join("openid-client/package.json").exists()
    {
        let status = Command::new(root().join("scripts/peers"))
            .stdout(Stdio::null())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "scripts/peers failed");
    }
    modules
}

/// npm oidc-provider in the style of Entra ID (`entra`) or of a B2C user flow (`b2c`),
/// stopped on drop.
pub struct Upstream {
    child: Child,
    pub issuer: String,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Upstream {
    pub fn start(style: &str, redirect_uri: &str) -> Self {
        let mut child = Command::new("node")
            .arg(peers().join("upstream.mjs"))
            .env("PEER_MODULES", peer_modules())
            .env("PEER_STYLE", style)
            .env("PEER_REDIRECT_URI", redirect_uri)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: Value = serde_json::from_str(&line).expect("oidc-provider did not start");
        Self {
            child,
            issuer: started["issuer"].as_str().unwrap().to_owned(),
        }
    }
}

/// The product's two steps (`product.mjs`).
pub fn product(issuer: &str, step: &str, extra: &[(&str, &str)]) -> Result<Value, String> {
    let mut cmd = Command::new("node");
    cmd.arg(root().join("crates/idsync/tests/cli/sso/product.mjs"))
        .env("PEER_MODULES", peer_modules())
        .env("OP_ISSUER", issuer)
        .env("OP_CLIENT_ID", "jira")
        .env("OP_CLIENT_SECRET", PRODUCT_SECRET)
        .env("OP_REDIRECT_URI", PRODUCT_CB)
        .env("PRODUCT_STEP", step);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run node");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Where the browser stopped: a redirect to the product, or a page.
#[derive(Debug)]
pub enum Stop {
    AtProduct(String),
    Page { status: u16, body: String },
}

/// A browser: cookies by name and path, redirects followed by hand.
pub struct Browser {
    http: reqwest::blocking::Client,
    cookies: HashMap<(String, String), String>,
    /// The last hop to idsync's upstream callback (the identity provider's answer), as sent.
    pub upstream_answer: Option<reqwest::Url>,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            upstream_answer: None,
        }
    }

    pub fn send(
        &mut self,
        method: &str,
        url: &reqwest::Url,
        form: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        let mut req = if method == "POST" {
            self.http.post(url.clone()).form(form)
        } else {
            self.http.get(url.clone())
        };
        let cookies: Vec<String> = self
            .cookies
            .iter()
            .filter(|((_, path), _)| url.path().starts_with(path.as_str()))
            .map(|((n, _), v)| format!("{n}={v}"))
            .collect();
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        let resp = req.send().unwrap();
        for value in resp.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let mut parts = text.split(';');
            let (name, value) = parts.next().unwrap().trim().split_once('=').unwrap();
            let mut path = "/".to_owned();
            let mut gone = value.is_empty();
            for attr in parts.map(str::trim) {
                if let Some((k, p)) = attr.split_once('=') {
                    if k.eq_ignore_ascii_case("path") {
                        path = p.to_owned();
                    }
                }
                let attr = attr.to_ascii_lowercase();
                gone |= attr.starts_with("expires=thu, 01 jan 1970") || attr == "max-age=0";
            }
            if gone {
                self.cookies.remove(&(name.to_owned(), path));
            } else {
                self.cookies
                    .insert((name.to_owned(), path), value.to_owned());
            }
        }
        resp
    }

    /// From the product's authorization URL: through idsync, the upstream's login pages (as
    /// `login`), back through idsync, until a redirect to the product or a page of idsync's.
    pub fn sign_in(&mut self, start: &str, login: &str, idsync: &str) -> Stop {
        let mut url = reqwest::Url::parse(start).unwrap();
        let (mut method, mut form): (&str, Vec<(&str, &str)>) = ("GET", Vec::new());
        for _ in 0..20 {
            let resp = self.send(method, &url, &form);
            let status = resp.status().as_u16();
            if let Some(loc) = resp.headers().get("location") {
                let next = url.join(loc.to_str().unwrap()).unwrap();
                if next.as_str().starts_with(PRODUCT_CB) {
                    return Stop::AtProduct(next.to_string());
                }
                if next.path().contains("/sso/upstream/") {
                    self.upstream_answer = Some(next.clone());
                }
                url = next;
                (method, form) = ("GET", Vec::new());
                continue;
            }
            let body = resp.text().unwrap();
            if url.as_str().starts_with(idsync) {
                return Stop::Page { status, body };
            }
            assert!(
                (200..300).contains(&status),
                "upstream answered {status}: {body}"
            );
            method = "POST";
            form = if body.contains(r#"name="prompt" value="login""#) {
                vec![("prompt", "login"), ("login", login), ("password", "any")]
            } else if body.contains(r#"name="prompt" value="consent""#) {
                vec![("prompt", "consent")]
            } else {
                panic!("a page the test does not know at {url}: {body}")
            };
        }
        panic!("no end after 20 steps")
    }
}
