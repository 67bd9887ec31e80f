//! What concerns logins: `[sources.x] type = "login"` (a directory fed by logins alone),
//! `login_wait` on the sources that take logins, and a flow's `inactive_after` /
//! `inactive_exempt` (decisions 0042, 0043).

use super::Checker;
use crate::{LoginSourceConfig, SourceConfig, SourceKind};
use std::collections::BTreeMap;
use std::time::Duration;
use toml_edit::{Item, TableLike};

impl Checker<'_> {
    /// `login_wait`, for the source types that take logins.
    pub(super) fn login_wait(&mut self, t: &dyn TableLike, path: &str, kind: &str) -> Duration {
        let wait = self.duration(t, "login_wait", path);
        if wait.is_some() && kind == "file" {
            let span = t.get("login_wait").and_then(Item::span);
            self.err(
                &span,
                &format!("{path}.login_wait"),
                "a file source takes no logins (its file is the whole truth at each read): login_wait is for msgraph, scim and login sources",
            );
        }
        if let Some(w) = wait.filter(|w| *w > Duration::from_secs(300)) {
            let span = t.get("login_wait").and_then(Item::span);
            self.err(
                &span,
                &format!("{path}.login_wait"),
                format!(
                    "{}s is longer than a login page should wait: at most 5m",
                    w.as_secs()
                ),
            );
        }
        wait.unwrap_or(SourceConfig::DEFAULT_LOGIN_WAIT)
    }

    /// `[sources.x] type = "login"`.
    pub(super) fn login_source(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        path: &str,
        directory: String,
        interval: Option<Duration>,
        login_wait: Duration,
    ) -> Option<SourceConfig> {
        self.keys(
            t,
            path,
            &["type", "directory", "interval", "login_wait", "graph"],
        );
        if interval.is_some() {
            let span = t.get("interval").and_then(Item::span);
            self.err(
                &span,
                &format!("{path}.interval"),
                "a login source is fed by logins; it has no schedule",
            );
        }
        let graph = self.string(t, "graph", path);
        Some(SourceConfig {
            name: name.to_string(),
            directory,
            interval: None,
            kind: SourceKind::Login(LoginSourceConfig { graph }),
            login_wait,
        })
    }

    /// A login source's `graph` names an msgraph source.
    pub(super) fn login_graph_refs(
        &mut self,
        root: &dyn TableLike,
        sources: &BTreeMap<String, SourceConfig>,
    ) {
        let tables = root.get("sources").and_then(Item::as_table_like);
        for (name, s) in sources {
            let SourceKind::Login(LoginSourceConfig { graph: Some(g) }) = &s.kind else {
                continue;
            };
            let ok = matches!(
                sources.get(g).map(|s| &s.kind),
                Some(SourceKind::MsGraph(_))
            );
            if ok {
                continue;
            }
            let span = tables
                .and_then(|t| t.get(name))
                .and_then(Item::as_table_like)
                .and_then(|t| t.get("graph"))
                .and_then(Item::span);
            let msgraph: Vec<&String> = sources
                .iter()
                .filter(|(_, s)| matches!(s.kind, SourceKind::MsGraph(_)))
                .map(|(n, _)| n)
                .collect();
            self.err(
                &span,
                &format!("sources.{name}.graph"),
                format!(
                    "no msgraph source named {g:?} (msgraph sources: {})",
                    super::list(msgraph.into_iter())
                ),
            );
        }
    }

    /// `inactive_after` and `inactive_exempt` of a flow.
    pub(super) fn inactivity(
        &mut self,
        t: &dyn TableLike,
        path: &str,
    ) -> Option<idsync_core::inactivity::Inactivity> {
        let after = self.duration(t, "inactive_after", path);
        let mut exempt = Vec::new();
        for (i, (p, span)) in self
            .str_array(t, "inactive_exempt", path)
            .into_iter()
            .enumerate()
        {
            match idsync_core::scope::GroupPattern::parse(&p) {
                Ok(g) => exempt.push(g),
                Err(e) => self.err(
                    &span,
                    &format!("{path}.inactive_exempt[{i}]"),
                    e.to_string(),
                ),
            }
        }
        let Some(after) = after else {
            if t.get("inactive_exempt").is_some() && t.get("inactive_after").is_none() {
                let span = t.get("inactive_exempt").and_then(Item::span);
                self.err(
                    &span,
                    &format!("{path}.inactive_exempt"),
                    "exempts from nothing without inactive_after = \"90d\" (days without a login)",
                );
            }
            return None;
        };
        let days = after.as_secs() / 86_400;
        if after.as_secs() % 86_400 != 0 || days == 0 {
            let span = t.get("inactive_after").and_then(Item::span);
            self.err(
                &span,
                &format!("{path}.inactive_after"),
                "a whole number of days, at least one (e.g. \"90d\")",
            );
            return None;
        }
        Some(idsync_core::inactivity::Inactivity {
            after_days: u32::try_from(days).unwrap_or(u32::MAX),
            exempt,
        })
    }
}
