//! `idsync source check`: sign in to a Graph tenant and show what idsync would read.

use crate::EXIT_UNREACHABLE;
use idsync_config::Config;
use idsync_engine::{EngineError, Runtime};

pub async fn source_check(
    rt: &Runtime,
    config: &Config,
    name: &str,
    json: bool,
) -> anyhow::Result<u8> {
    let Some(sc) = config.sources.get(name) else {
        return Err(EngineError::UnknownSource(name.to_string()).into());
    };
    let idsync_config::SourceKind::MsGraph(g) = &sc.kind else {
        out!("source {name}: nothing to check (only Microsoft Graph sources sign in to a tenant)");
        return Ok(0);
    };
    let source = idsync_engine::graph_source(name, g, rt.clock.clone())?;
    let report = match source.check().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("source {name}: {e}");
            return Ok(EXIT_UNREACHABLE);
        }
    };
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("source {name}: {}", idsync_core::Source::describe(&source));
        out!(
            "tenant:      {} (id {})",
            report.tenant_name.as_deref().unwrap_or("?"),
            report.tenant_id.as_deref().unwrap_or("?")
        );
        let domains: Vec<String> = report
            .domains
            .iter()
            .map(|(d, default, initial)| {
                let mut tags = Vec::new();
                if *default {
                    tags.push("default");
                }
                if *initial {
                    tags.push("initial");
                }
                if tags.is_empty() {
                    d.clone()
                } else {
                    format!("{d} ({})", tags.join(", "))
                }
            })
            .collect();
        out!(
            "domains:     {}",
            if domains.is_empty() {
                "?".to_string()
            } else {
                domains.join(", ")
            }
        );
        let scope = match &g.scope {
            idsync_config::MsGraphScope::All => "the whole directory".to_string(),
            idsync_config::MsGraphScope::Groups(gs) => format!("members of {}", gs.join(", ")),
            idsync_config::MsGraphScope::App(a) => format!("assignments of the application {a}"),
        };
        match (report.users_in_scope, report.groups_in_scope) {
            (Some(u), Some(gr)) => out!("in scope:    {u} users, {gr} groups ({scope})"),
            _ => out!("in scope:    not counted ({scope})"),
        }
        out!(
            "granted:     {}",
            if report.granted.is_empty() {
                "(none)".to_string()
            } else {
                report.granted.join(", ")
            }
        );
        for any in &report.missing {
            out!(
                "missing:     grant admin consent for {}{}",
                any[0],
                if any.len() > 1 {
                    format!(" (or {})", any[1..].join(", "))
                } else {
                    String::new()
                }
            );
        }
        for p in &report.problems {
            out!("problem:     {p}");
        }
        if report.ok() {
            out!("ok: check that this is the tenant you mean to sync before the first run");
        }
    }
    Ok(if report.ok() { 0 } else { EXIT_UNREACHABLE })
}
