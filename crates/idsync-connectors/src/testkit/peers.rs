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

/// The Python venv holding the SCIM peers from PyPI (scim2-server, scim2-tester), installed on
/// first use into `target/scim-venv`; `scripts/scim2-tester` uses the same one.
pub fn scim_venv() -> Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let venv = root.join("target/scim-venv");
        let ready = || venv.join("bin/scim2-server").exists() && venv.join("bin/scim2").exists();
        if ready() {
            return Ok(venv);
        }
        // Test binaries run in parallel: one installs, under a lock file, the others wait.
        let lock = root.join("target/scim-venv.lock");
        std::fs::create_dir_all(root.join("target"))
            .map_err(|e| format!("cannot create target/: {e}"))?;
        let end = Instant::now() + Duration::from_secs(600);
        loop {
            if ready() {
                return Ok(venv);
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
                        Ok(s) if s.success() && ready() => Ok(venv),
                        other => Err(format!(
                            "scripts/peers could not install the SCIM peers: {other:?}"
                        )),
                    };
                }
                Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => return Err(format!("waited 10 minutes for {}: {e}", lock.display())),
            }
        }
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

/// scim2-server in a quirk mode (`testkit/scim2_quirks.py`): the real server with its answers
/// bent as services in the wild bend them. `quirks`: `ignores-filters` (searches answer with
/// the whole list), `crashes-on-count` (a list request with `count` answers 500),
/// `lists-need-filter` (a list without `filter` answers 400). `extra` as
/// for [`scim2_server_with`].
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
