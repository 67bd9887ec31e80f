//! Counters for /metrics, kept in memory by the service and rendered in the Prometheus text
//! format.

use crate::run::RunReport;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    runs: BTreeMap<(String, String), u64>,
    operations: BTreeMap<(String, String), i64>,
    last_duration_ms: BTreeMap<String, i64>,
    quarantine_skips: BTreeMap<String, u64>,
}

impl Metrics {
    pub fn record_run(&self, report: &RunReport) {
        let Ok(mut m) = self.inner.lock() else {
            return;
        };
        *m.runs
            .entry((report.flow.clone(), report.status.as_str().to_string()))
            .or_insert(0) += 1;
        for (key, n) in &report.counts.0 {
            if key.contains('.') && !key.starts_with("read.") {
                *m.operations
                    .entry((report.flow.clone(), key.clone()))
                    .or_insert(0) += n;
            }
        }
        m.last_duration_ms
            .insert(report.flow.clone(), report.ended_ms - report.started_ms);
    }

    pub fn record_failure(&self, flow: &str) {
        if let Ok(mut m) = self.inner.lock() {
            *m.runs
                .entry((flow.to_string(), "error".to_string()))
                .or_insert(0) += 1;
        }
    }

    /// A scheduled or incremental run left out because the flow is quarantined.
    pub fn record_quarantine_skip(&self, flow: &str) {
        if let Ok(mut m) = self.inner.lock() {
            *m.quarantine_skips.entry(flow.to_string()).or_insert(0) += 1;
        }
    }

    pub fn quarantine_skips(&self, flow: &str) -> u64 {
        self.inner
            .lock()
            .map(|m| m.quarantine_skips.get(flow).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The counters in Prometheus text format, followed by `extra` gauge lines.
    pub fn render(&self, out: &mut String) {
        let Ok(m) = self.inner.lock() else {
            return;
        };
        let _ = writeln!(
            out,
            "# HELP idsync_runs_total Runs of a flow by final status."
        );
        let _ = writeln!(out, "# TYPE idsync_runs_total counter");
        for ((flow, status), n) in &m.runs {
            let _ = writeln!(
                out,
                "idsync_runs_total{{flow=\"{}\",status=\"{}\"}} {n}",
                escape(flow),
                status
            );
        }
        let _ = writeln!(
            out,
            "# HELP idsync_operations_total Operations applied to targets by action and outcome."
        );
        let _ = writeln!(out, "# TYPE idsync_operations_total counter");
        for ((flow, key), n) in &m.operations {
            let (action, outcome) = key.split_once('.').unwrap_or((key, ""));
            let _ = writeln!(
                out,
                "idsync_operations_total{{flow=\"{}\",action=\"{action}\",outcome=\"{outcome}\"}} {n}",
                escape(flow)
            );
        }
        let _ = writeln!(
            out,
            "# HELP idsync_last_run_duration_seconds Duration of the last run of a flow."
        );
        let _ = writeln!(out, "# TYPE idsync_last_run_duration_seconds gauge");
        for (flow, ms) in &m.last_duration_ms {
            let _ = writeln!(
                out,
                "idsync_last_run_duration_seconds{{flow=\"{}\"}} {:.3}",
                escape(flow),
                *ms as f64 / 1000.0
            );
        }
        let _ = writeln!(
            out,
            "# HELP idsync_quarantine_skips_total Runs a quarantined flow left out while backing off."
        );
        let _ = writeln!(out, "# TYPE idsync_quarantine_skips_total counter");
        for (flow, n) in &m.quarantine_skips {
            let _ = writeln!(
                out,
                "idsync_quarantine_skips_total{{flow=\"{}\"}} {n}",
                escape(flow)
            );
        }
    }
}

/// Escape a Prometheus label value.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
