//! The processes the benchmarks of the `idsync` crate start: `idsync serve` (a SCIM push
//! directory, or a configuration of the benchmark's), each killed when dropped. Apart from
//! `common`, which the engine's benchmarks share and where `idsync`'s binary is unknown.

/// A free port on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// A child process, killed when dropped.
pub struct Kill(pub std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `idsync -c <dir>/idsync.toml serve` in its own process (environment `env`, its log to
/// `stderr`), once it listens on `port`.
pub fn serve(
    dir: &std::path::Path,
    port: u16,
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> Result<Kill, String> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_idsync"));
    cmd.arg("-c")
        .arg(dir.join("idsync.toml"))
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let keep = Kill(cmd.spawn().map_err(|e| e.to_string())?);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return Err("idsync serve did not listen".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(keep)
}

/// `idsync serve` in `dir` with one SCIM push directory: `[sources.<name>]` of type `scim`
/// with the `extra` lines (a profile, verified domains). Returns the process, its port and a
/// token for the directory.
pub fn scim_service(
    dir: &std::path::Path,
    name: &str,
    extra: &str,
) -> Result<(Kill, u16, String), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let port = free_port()?;
    std::fs::write(
        dir.join("idsync.toml"),
        format!("[store]\npath = \"{name}.db\"\n[server]\nlisten = \"127.0.0.1:{port}\"\nscim_rate = 0\n[log]\nlevel = \"warn\"\n\n[sources.{name}]\ntype = \"scim\"\n{extra}"),
    )
    .map_err(|e| e.to_string())?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_idsync"))
        .arg("-c")
        .arg(dir.join("idsync.toml"))
        .args(["token", "create", name])
        .output()
        .map_err(|e| e.to_string())?;
    let token = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string();
    if token.is_empty() {
        return Err(format!(
            "idsync token create {name} printed no token: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let keep = serve(dir, port, &[], std::process::Stdio::null())?;
    Ok((keep, port, token))
}
