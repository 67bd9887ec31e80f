//! `idsync serve`: schedules, change-log followers, the admin API and the SCIM endpoints, until
//! SIGTERM or SIGINT; then runs under way end after their operations in flight (bounded by
//! `signals::DRAIN`).

use crate::signals::{Signals, DRAIN};
use anyhow::Context;
use idsync_config::Config;
use idsync_engine::{Runtime, Service};
use std::sync::Arc;

pub async fn serve(
    rt: Runtime,
    config: &Config,
    listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<u8> {
    // Listening first: a SIGTERM from here on drains instead of killing the process.
    let mut signals = Signals::listen()?;
    let addr = listen.unwrap_or(config.server.listen);
    let svc = Service::new(Arc::new(rt));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sso = match &config.sso {
        Some(c) => {
            let sso = idsync_server::sso::Sso::start(c, &config.store, Arc::clone(&svc))
                .await
                .context("cannot start single sign-on")?;
            Some(Arc::new(sso))
        }
        None => None,
    };
    let mut tasks = svc.start(stop_rx.clone());
    if let Some(sso) = &sso {
        tasks.push(tokio::spawn(Arc::clone(sso).maintain_until(stop_rx)));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "listening");
    out!("idsync listening on http://{local} (Ctrl-C or SIGTERM to stop)");
    for (target, c) in &svc.runtime.crowd {
        let about = c
            .config
            .description
            .as_deref()
            .map_or_else(String::new, |d| format!("{d}; "));
        out!(
            "crowd directory {target} ({about}flow {}): Crowd server URL http://{local}/crowd/{target} (applications: idsync crowd app create --target {target} --name NAME)",
            c.flow
        );
    }
    if let Some(sso) = &sso {
        out!(
            "single sign-on: OpenID issuer {} (discovery {}/.well-known/openid-configuration)",
            sso.issuer(),
            sso.issuer()
        );
    }
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = config.server.clone();
    let http_svc = Arc::clone(&svc);
    let server = tokio::spawn(async move {
        idsync_server::serve_with_sso(listener, http_svc, &limits, sso, async {
            let _ = http_stopped.await;
        })
        .await
    });
    let signal = signals.recv().await;
    tracing::warn!(
        signal = signal.name(),
        drain_s = DRAIN.as_secs(),
        "stopping: runs under way end after their operations in flight; no new run starts"
    );
    svc.runtime.shutdown();
    let _ = stop_tx.send(true);
    let _ = http_stop.send(());
    let drain = async {
        for t in tasks {
            let _ = t.await;
        }
        server.await
    };
    tokio::select! {
        served = drain => {
            served??;
            tracing::info!("stopped");
        }
        _ = tokio::time::sleep(DRAIN) => {
            tracing::warn!(drain_s = DRAIN.as_secs(), "not drained in time: exiting; runs cut short show as interrupted at the next start");
        }
        again = signals.recv() => {
            tracing::warn!(signal = again.name(), "second signal: exiting now; runs cut short show as interrupted at the next start");
        }
    }
    svc.runtime.store.close().await;
    Ok(0)
}
