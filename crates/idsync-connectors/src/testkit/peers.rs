//! Real peers for tests, started on 127.0.0.1 with free ports and stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A child process that is killed when dropped.
pub struct Peer {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl Peer {
    /// The peer's process id (to read what it spends, in benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The workspace root (peers install into its `target/`).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run `scripts/peers` once if `ready` says no. Test binaries run in parallel: one installs,
/// under a lock file, the others wait for it.
fn install_once(what: &str, ready: impl Fn() -> bool) -> Result<(), String> {
    if ready() {
        return Ok(());
    }
    let root = root();
    let lock = root.join("target/peers-install.lock");
    std::fs::create_dir_all(root.join("target"))
        .map_err(|e| format!("cannot create target/: {e}"))?;
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        if ready() {
            return Ok(());
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => {
                let status = Command::new(root.join("scripts/peers"))
                    .stdout(Stdio::null())
                    .status();
                let _ = std::fs::remove_file(&lock);
                return match status {
                    Ok(s) if s.success() && ready() => Ok(()),
                    other => Err(format!("scripts/peers could not install {what}: {other:?}")),
                };
            }
            Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(format!("waited 10 minutes for {}: {e}", lock.display())),
        }
    }
}

/// The Python venv holding the SCIM peers from PyPI (scim2-server, scim2-tester), installed on
/// first use into `target/scim-venv`; `scripts/scim2-tester` uses the same one.
pub fn scim_venv() -> Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = root().join("target/scim-venv");
        install_once("the SCIM peers", || {
            venv.join("bin/scim2-server").exists() && venv.join("bin/scim2").exists()
        })?;
        Ok(venv)
    })
    .clone()
}

/// Poll `ready` until it says yes or the deadline passes.
pub fn wait_until(
    what: &str,
    deadline: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let end = Instant::now() + deadline;
    while !ready() {
        if Instant::now() > end {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// scim2-server (PyPI), an in-memory SCIM server that follows the RFCs closely, accepting
/// `token`. Its base URL ends in `/v2`.
pub fn scim2_server(token: &str) -> Result<Peer, String> {
    scim2_server_with(token, &[])
}

/// scim2-server with extra arguments (`--service-provider-config FILE`, ...).
pub fn scim2_server_with(token: &str, extra: &[&str]) -> Result<Peer, String> {
    let venv = scim_venv()?;
    let port = free_port();
    let child = Command::new(venv.join("bin/scim2-server"))
        .args([
            "--bearer-token",
            token,
            "--hostname",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start scim2-server: {e}"))?;
    let peer = Peer {
        child,
        url: format!("http://127.0.0.1:{port}/v2"),
    };
    wait_until("scim2-server", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    Ok(peer)
}

/// Start a peer process on `port` and wait until it accepts connections.
fn start(what: &str, mut cmd: Command, port: u16, url: String) -> Result<Peer, String> {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let peer = Peer { child, url };
    wait_until(what, Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    Ok(peer)
}

/// scim2-server in a quirk mode (`testkit/scim2_quirks.py`): the real server with its answers
/// bent as services in the wild bend them. `quirks`: `ignores-filters` (searches answer with
/// the whole list), `crashes-on-count` (a list request with `count` answers 500),
/// `lists-need-filter` (a list without `filter` answers 400), `refuses-sub-attributes` (a
/// `/Users` request carrying `emails[].primary` answers 400 naming it; `refuses=<attribute>`
/// refuses that one instead), `requires-members` (a
/// group POST without members answers 400 naming members), `drops-members-on-create` (a group
/// POST creates the group without its members and answers `"members": []`),
/// `answers-without-members` (a group POST keeps its members, answers without them),
/// `refuses-members-on-create` (a group POST with members answers 400 naming them). `extra` as
/// for [`scim2_server_with`]. Its list requests are counted: [`quirky_list_requests`].
pub fn scim2_server_quirky(token: &str, quirks: &[&str], extra: &[&str]) -> Result<Peer, String> {
    let venv = scim_venv()?;
    let port = free_port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/testkit/scim2_quirks.py");
    let child = Command::new(venv.join("bin/python3"))
        .arg(script)
        .args([
            "--bearer-token",
            token,
            "--hostname",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(extra)
        .env("SCIM2_QUIRKS", quirks.join(","))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start scim2-server in quirk mode: {e}"))?;
    let peer = Peer {
        child,
        url: format!("http://127.0.0.1:{port}/v2"),
    };
    wait_until("scim2-server (quirks)", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    Ok(peer)
}

/// How many list requests (GET of `/Users`, of `/Groups`, searches included) a quirky
/// scim2-server answered so far, by endpoint (`"/Users"`).
pub fn quirky_list_requests(
    peer: &Peer,
) -> Result<std::collections::BTreeMap<String, u64>, String> {
    use std::io::{Read, Write};
    let rest = peer
        .url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http URL: {}", peer.url))?;
    let (host, base) = rest.split_once('/').unwrap_or((rest, ""));
    let mut conn = std::net::TcpStream::connect(host).map_err(|e| format!("{host}: {e}"))?;
    write!(
        conn,
        "GET /{base}/_quirks/lists HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{host}: {e}"))?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .map_err(|e| format!("{host}: {e}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| format!("no answer from {host}: {answer}"))?;
    serde_json::from_str(body).map_err(|e| format!("the counts from {host}: {e}: {body}"))
}

/// The app files we wrote for the peers that need one (`tests/peers/`).
fn peer_files() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// A peer's data directory, removed with the peer.
pub struct PeerWithData {
    /// The running peer (declared first: stopped before its data goes).
    pub peer: Peer,
    _data: DataDir,
}

/// A directory removed when dropped.
struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for PeerWithData {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.peer
    }
}

/// django-scim2 (PyPI, MIT), Django's own users and groups served over SCIM by the small
/// Django project in `tests/peers/django_scim` (a SQLite file of its own), accepting `token`.
/// Its base URL ends in `/scim/v2`. It says `filter.supported: false` (yet filters), keys users
/// by database integers, and keeps only part of the User schema.
pub fn django_scim2(token: &str) -> Result<PeerWithData, String> {
    let venv = root().join("target/django-scim-venv");
    install_once("django-scim2", || {
        venv.join("lib").exists()
            && Command::new(venv.join("bin/python"))
                .args(["-c", "import django_scim"])
                .status()
                .is_ok_and(|s| s.success())
    })?;
    let port = free_port();
    let data = DataDir(
        std::env::temp_dir().join(format!("idsync-django-scim2-{}-{port}", std::process::id())),
    );
    std::fs::create_dir_all(&data.0).map_err(|e| format!("cannot make a data directory: {e}"))?;
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.arg(peer_files().join("django_scim/serve.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PEER_PORT", port.to_string())
        .env("PEER_TOKEN", token)
        .env("PEER_DB", data.0.join("scim.sqlite3"));
    let peer = start(
        "django-scim2",
        cmd,
        port,
        format!("http://127.0.0.1:{port}/scim/v2"),
    )?;
    Ok(PeerWithData { peer, _data: data })
}

/// SCIMMY with scimmy-routers (npm, MIT) on Express, kept in memory by the script in
/// `tests/peers/scimmy`, accepting `token`. Its base URL ends in `/scim/v2`. SCIMMY parses,
/// filters and patches by the RFC's schemas; its filters compare userName case-sensitively.
pub fn scimmy(token: &str) -> Result<Peer, String> {
    let modules = root().join("target/scimmy-peer/node_modules");
    install_once("SCIMMY", || modules.join("scimmy-routers").exists())?;
    let port = free_port();
    let mut cmd = Command::new("node");
    cmd.arg(peer_files().join("scimmy/server.cjs"))
        .env("NODE_PATH", &modules)
        .env("PEER_PORT", port.to_string())
        .env("PEER_TOKEN", token);
    start(
        "SCIMMY",
        cmd,
        port,
        format!("http://127.0.0.1:{port}/scim/v2"),
    )
}

/// The Python venv holding the Crowd clients from PyPI (`crowd`, `atlassian-python-api`),
/// installed on first use into `target/crowd-venv` by `scripts/peers`.
pub fn crowd_venv() -> Result<PathBuf, String> {
    let venv = root().join("target/crowd-venv");
    install_once("the Crowd clients (PyPI)", || {
        venv.join("bin/python").exists()
            && Command::new(venv.join("bin/python"))
                .args(["-c", "import crowd, atlassian"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })?;
    Ok(venv)
}

/// The `node_modules` holding the npm `atlassian-crowd-client`, installed on first use into
/// `target/crowd-node` by `scripts/peers` (for `NODE_PATH`).
pub fn crowd_node_modules() -> Result<PathBuf, String> {
    let modules = root().join("target/crowd-node/node_modules");
    install_once("the Crowd client (npm)", || {
        modules.join("atlassian-crowd-client").exists()
    })?;
    Ok(modules)
}
