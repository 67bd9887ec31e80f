//! Peers and helpers: the npm scripts in `peers/`, a cookie jar that drives oidc-provider's
//! login pages over HTTP, a small identity provider whose tokens the tests forge, and the crate's
//! provider mounted in axum.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Json;
use idsync_oidc::provider::{Provider, Response as OpResponse, UserInfo};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/peers")
}

/// `target/oidc-peer/node_modules` (oidc-provider, openid-client, jose), installed by
/// `scripts/peers` on first use (one test installs under a lock file, the others wait).
pub fn peer_modules() -> PathBuf {
    let modules = root().join("target/oidc-peer/node_modules");
    let ready = || {
        ["oidc-provider", "openid-client", "jose"]
            .iter()
            .all(|p| modules.join(p).join("package.json").exists())
    };
    let lock = root().join("target/peers-install.lock");
    let end = Instant::now() + Duration::from_secs(600);
    while !ready() {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => {
                let status = std::process::Command::new(root().join("scripts/peers"))
                    .stdout(Stdio::null())
                    .status();
                let _ = std::fs::remove_file(&lock);
                assert!(
                    status.is_ok_and(|s| s.success()) && ready(),
                    "scripts/peers could not install the OpenID peers"
                );
            }
            Err(_) => {
                assert!(
                    Instant::now() < end,
                    "waited 10 minutes for {}",
                    lock.display()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    modules
}

fn node(script: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(peers_dir().join(script))
        .env("PEER_MODULES", peer_modules())
        .kill_on_drop(true);
    cmd
}

/// npm oidc-provider in the given style (`entra` or `b2c`), stopped on drop.
pub struct Upstream {
    _child: tokio::process::Child,
    pub issuer: String,
}

impl Upstream {
    pub async fn start(style: &str, redirect_uri: &str) -> Self {
        let mut child = node("upstream.mjs")
            .env("PEER_STYLE", style)
            .env("PEER_REDIRECT_URI", redirect_uri)
            .stdout(Stdio::piped())
            // OIDC_PEER_LOG=1 shows oidc-provider's log (it stays quiet otherwise).
            .stderr(if std::env::var_os("OIDC_PEER_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("oidc-provider did not start within 30 s")
            .unwrap()
            .expect("oidc-provider exited before it listened");
        let started: Value = serde_json::from_str(&line).unwrap();
        Self {
            _child: child,
            issuer: started["issuer"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn rotate(&self) -> String {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/__rotate", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["kid"].as_str().unwrap().to_owned()
    }

    pub async fn jwks_reads(&self) -> u64 {
        let answer: Value = reqwest::get(format!("{}/__stats", self.issuer))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["jwks"].as_u64().unwrap()
    }
}

/// Runs `forge.mjs` (npm jose) on a batch of requests.
pub async fn forge(requests: Value) -> Vec<Value> {
    let mut child = node("forge.mjs")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(requests.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "forge.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `client.mjs` (npm openid-client) against a provider; its JSON answer, or its error.
pub async fn openid_client(
    issuer: &str,
    client_id: &str,
    secret: &str,
    auth: &str,
    redirect_uri: &str,
) -> Result<Value, String> {
    let out = node("client.mjs")
        .env("OP_ISSUER", issuer)
        .env("OP_CLIENT_ID", client_id)
        .env("OP_CLIENT_SECRET", secret)
        .env("OP_CLIENT_AUTH", auth)
        .env("OP_REDIRECT_URI", redirect_uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run node");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A cookie jar (name and path → value) and a client that follows redirects by hand, so the
/// redirect back to the relying party is seen instead of followed.
pub struct Browser {
    http: reqwest::Client,
    cookies: HashMap<(String, String), String>,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self, url: &url::Url) -> String {
        self.cookies
            .iter()
            .filter(|((_, path), _)| url.path().starts_with(path.as_str()))
            .map(|((name, _), value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let mut parts = text.split(';');
            let (name, value) = parts.next().unwrap().trim().split_once('=').unwrap();
            let mut path = "/".to_owned();
            let mut expired = value.is_empty();
            for attr in parts {
                let attr = attr.trim();
                if let Some(p) = attr.strip_prefix("path=") {
                    path = p.to_owned();
                }
                if attr
                    .to_ascii_lowercase()
                    .starts_with("expires=thu, 01 jan 1970")
                {
                    expired = true;
                }
            }
            let key = (name.to_owned(), path);
            if expired {
                self.cookies.remove(&key);
            } else {
                self.cookies.insert(key, value.to_owned());
            }
        }
    }

    async fn send(
        &mut self,
        method: &str,
        url: &url::Url,
        form: Option<&[(&str, &str)]>,
    ) -> reqwest::Response {
        let mut request = if method == "POST" {
            self.http.post(url.clone()).form(form.unwrap_or(&[]))
        } else {
            self.http.get(url.clone())
        };
        let cookies = self.cookie_header(url);
        if !cookies.is_empty() {
            request = request.header("cookie", cookies);
        }
        let response = request.send().await.unwrap();
        self.keep(response.headers());
        response
    }

    /// Signs `login` in at oidc-provider's devInteractions pages, starting from the
    /// authorization URL, and returns the URL it redirects back to (`redirect_prefix...`).
    pub async fn sign_in(
        &mut self,
        authorization_url: &str,
        login: &str,
        redirect_prefix: &str,
    ) -> String {
        let mut url = url::Url::parse(authorization_url).unwrap();
        let mut method = "GET";
        let mut form: Vec<(&str, &str)> = Vec::new();
        for _ in 0..20 {
            let response = self.send(method, &url, Some(&form)).await;
            let status = response.status();
            if let Some(location) = response.headers().get("location") {
                let next = url.join(location.to_str().unwrap()).unwrap();
                if next.as_str().starts_with(redirect_prefix) {
                    return next.to_string();
                }
                url = next;
                method = "GET";
                form.clear();
                continue;
            }
            let page = response.text().await.unwrap();
            assert!(
                status.is_success(),
                "oidc-provider answered {status}: {page}"
            );
            method = "POST";
            form = if page.contains(r#"name="prompt" value="login""#) {
                vec![("prompt", "login"), ("login", login), ("password", "any")]
            } else if page.contains(r#"name="prompt" value="consent""#) {
                vec![("prompt", "consent")]
            } else {
                panic!("an oidc-provider page the test does not know: {page}")
            };
        }
        panic!("no redirect back after 20 steps")
    }
}

/// A loopback listener on a free port, and its base URL.
pub async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// A server task that is aborted on drop.
pub struct Served(tokio::task::JoinHandle<()>);

impl Drop for Served {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> Served {
    Served(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}

/// An identity provider that serves discovery, a JWKS the test sets, and a token endpoint that
/// answers the ID token the test queued (and records what it was sent).
#[derive(Default)]
pub struct FakeIdpState {
    pub jwks: Value,
    pub id_token: String,
    pub jwks_reads: u64,
    pub token_forms: Vec<HashMap<String, String>>,
    pub token_authorization: Vec<Option<String>>,
}

pub struct FakeIdp {
    pub issuer: String,
    pub state: Arc<Mutex<FakeIdpState>>,
    _served: Served,
}

impl FakeIdp {
    pub async fn start(jwks: Value) -> Self {
        let (listener, base) = listen().await;
        let issuer = format!("{base}/tenant/v2.0");
        let state = Arc::new(Mutex::new(FakeIdpState {
            jwks,
            ..FakeIdpState::default()
        }));
        let discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
        });
        let app = axum::Router::new()
            .route(
                "/tenant/v2.0/.well-known/openid-configuration",
                get(move || {
                    let d = discovery.clone();
                    async move { Json(d) }
                }),
            )
            .route(
                "/tenant/v2.0/jwks",
                get(|State(s): State<Arc<Mutex<FakeIdpState>>>| async move {
                    let mut s = s.lock().unwrap();
                    s.jwks_reads += 1;
                    Json(s.jwks.clone())
                }),
            )
            .route(
                "/tenant/v2.0/token",
                post(
                    |State(s): State<Arc<Mutex<FakeIdpState>>>,
                     headers: HeaderMap,
                     Form(form): Form<HashMap<String, String>>| async move {
                        let mut s = s.lock().unwrap();
                        s.token_forms.push(form);
                        s.token_authorization.push(
                            headers
                                .get("authorization")
                                .map(|h| h.to_str().unwrap().to_owned()),
                        );
                        Json(json!({"access_token": "at", "token_type": "Bearer", "id_token": s.id_token}))
                    },
                ),
            )
            .with_state(Arc::clone(&state));
        Self {
            issuer,
            state,
            _served: serve(listener, app),
        }
    }
}

fn to_axum(answer: OpResponse) -> axum::response::Response {
    match answer {
        OpResponse::Redirect { location } => {
            (StatusCode::SEE_OTHER, [("location", location)]).into_response()
        }
        OpResponse::Json {
            status,
            body,
            headers,
        } => {
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                if body.is_null() {
                    String::new()
                } else {
                    body.to_string()
                },
            )
                .into_response();
            if !body.is_null() {
                response
                    .headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
            }
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        OpResponse::ErrorPage {
            status,
            title,
            message,
        } => (
            StatusCode::from_u16(status).unwrap(),
            format!("<h1>{title}</h1><p>{message}</p>"),
        )
            .into_response(),
    }
}

type Pairs = Vec<(String, String)>;

/// The crate's provider mounted under `/oidc` of `listener`; its authorization step signs
/// `user` in at once.
pub fn mount_provider(
    listener: tokio::net::TcpListener,
    provider: Arc<Provider>,
    user: UserInfo,
) -> Served {
    let state = (provider, user);
    let app = axum::Router::new()
        .route(
            "/oidc/.well-known/openid-configuration",
            get(|State((p, _)): State<(Arc<Provider>, UserInfo)>| async move { to_axum(p.discovery()) }),
        )
        .route(
            "/oidc/jwks",
            get(|State((p, _)): State<(Arc<Provider>, UserInfo)>| async move { to_axum(p.jwks()) }),
        )
        .route(
            "/oidc/authorize",
            get(
                |State((p, user)): State<(Arc<Provider>, UserInfo)>, Query(q): Query<Pairs>| async move {
                    match p.authorize(&q) {
                        Ok(request) => to_axum(p.issue_code(&request, user).await.unwrap()),
                        Err(answer) => to_axum(answer),
                    }
                },
            ),
        )
        .route(
            "/oidc/token",
            post(
                |State((p, _)): State<(Arc<Provider>, UserInfo)>, headers: HeaderMap, Form(form): Form<Pairs>| async move {
                    let auth = headers.get("authorization").and_then(|h| h.to_str().ok());
                    to_axum(p.token(&form, auth).await)
                },
            ),
        )
        .route(
            "/oidc/userinfo",
            get(|State((p, _)): State<(Arc<Provider>, UserInfo)>, headers: HeaderMap| async move {
                let auth = headers.get("authorization").and_then(|h| h.to_str().ok());
                to_axum(p.userinfo(auth).await)
            }),
        )
        .with_state(state);
    serve(listener, app)
}
