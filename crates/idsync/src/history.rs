//! The history: `runs`, `log`, `notifications`, `quarantine`.

use idsync_engine::{EngineError, Runtime};
use idsync_store::RunStatus;

pub async fn runs(
    rt: &Runtime,
    flow: Option<String>,
    source: Option<String>,
    limit: i64,
    json: bool,
) -> anyhow::Result<u8> {
    let name = source.map(|s| idsync_engine::read_run_name(&s)).or(flow);
    let runs = rt.store.list_runs(name.as_deref(), limit).await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(0);
    }
    out!(
        "{:<36}  {:<16}  {:<9}  {:<11}  {:<17}  {:>8}  {:>7}  {:>6}",
        "RUN",
        "FLOW",
        "TRIGGER",
        "MODE",
        "STATUS",
        "PLANNED",
        "APPLIED",
        "FAILED"
    );
    for r in runs {
        let c = |k: &str| r.counts.0.get(k).copied().unwrap_or(0);
        // Source reads carry what they read and what it cost instead of operations.
        let read = r.flow.starts_with("source:").then(|| {
            format!(
                "  changes {}, requests {}, retries {}, throttled {}, resource units {}",
                c("changes"),
                c("requests"),
                c("retries"),
                c("throttled"),
                c("resource_units")
            )
        });
        // A held run says whether it still waits, and how it was answered.
        let status = match (&r.status, &r.resolution) {
            (RunStatus::Held, Some(res)) => format!("held ({res})"),
            (RunStatus::Held, None) => "held (waiting)".to_string(),
            (st, _) => st.as_str().to_string(),
        };
        out!(
            "{:<36}  {:<16}  {:<9}  {:<11}  {:<17}  {:>8}  {:>7}  {:>6}{}",
            r.id,
            r.flow,
            r.trigger,
            r.mode,
            status,
            c("planned"),
            c("applied"),
            c("failed"),
            read.unwrap_or_default()
        );
    }
    Ok(0)
}

pub async fn log(rt: &Runtime, run: String, json: bool) -> anyhow::Result<u8> {
    let Some(r) = rt.store.get_run(&run).await? else {
        return Err(EngineError::UnknownRun(run).into());
    };
    let ops = rt.store.run_ops(&run).await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&ops)?);
        return Ok(0);
    }
    out!(
        "run {} of flow {} ({}, {}): {}{}",
        r.id,
        r.flow,
        r.trigger,
        r.mode,
        r.status.as_str(),
        r.error.map(|e| format!(": {e}")).unwrap_or_default()
    );
    for op in ops {
        out!(
            "{:>6}  {:<14}  {:<32}  {:<9}  {}{}",
            op.seq,
            op.action,
            op.object,
            op.outcome,
            op.reason,
            op.error.map(|e| format!(" -- {e}")).unwrap_or_default()
        );
    }
    Ok(0)
}

pub async fn notifications(rt: &Runtime, limit: i64) -> anyhow::Result<u8> {
    for n in rt.store.list_notifications(limit).await? {
        out!(
            "{}  {:<11}  {:<16}  {:<7}  {}  {}  {}",
            when(Some(n.at_ms)),
            n.event,
            n.flow,
            n.channel,
            if n.ok { "sent" } else { "FAILED" },
            n.destination,
            n.error.unwrap_or(n.subject)
        );
    }
    Ok(0)
}

pub async fn quarantine(rt: &Runtime, reset: Option<String>) -> anyhow::Result<u8> {
    if let Some(flow) = reset {
        rt.flow(&flow)?;
        let before = rt.store.record_flow_success(&flow).await?;
        out!(
            "flow {flow}: {}",
            if before.quarantined_ms.is_some() {
                "quarantine ended; it is back on its schedule"
            } else {
                "was not quarantined (its count of bad runs starts again)"
            }
        );
        return Ok(0);
    }
    out!(
        "{:<24}  {:<12}  {:>8}  LAST FAILURE",
        "FLOW",
        "STATUS",
        "FAILURES"
    );
    for name in rt.flows.keys() {
        let h = rt.store.flow_health(name).await?;
        let status = match (h.quarantined_ms, h.failures) {
            (Some(_), _) => "quarantined",
            (None, 0) => "ok",
            (None, _) => "failing",
        };
        out!(
            "{:<24}  {:<12}  {:>8}  {}",
            name,
            status,
            h.failures,
            h.last_failure.as_deref().unwrap_or("-")
        );
    }
    Ok(0)
}

pub fn when(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok())
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "-".to_string())
}
