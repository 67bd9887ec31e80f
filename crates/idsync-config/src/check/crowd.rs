//! `type = "crowd"` targets: the directory idsync serves to Atlassian Data Center products,
//! and the rules that tie it to exactly one flow.

use super::{Checker, Span};
use crate::{CrowdTargetConfig, FlowConfig, TargetConfig, TargetKind};
use std::collections::BTreeMap;
use std::time::Duration;
use toml_edit::{Item, TableLike};

/// How long the served event feed keeps its events by default.
const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(7 * 86_400);

impl Checker<'_> {
    pub(super) fn crowd_target(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        path: &str,
    ) -> Option<TargetConfig> {
        self.keys(
            t,
            path,
            &["type", "description", "event_retention", "nested_groups"],
        );
        let description = self.string(t, "description", path);
        let event_retention = self
            .duration(t, "event_retention", path)
            .unwrap_or(DEFAULT_EVENT_RETENTION);
        if event_retention < Duration::from_secs(60) {
            let span = t.get("event_retention").and_then(Item::span);
            self.err(
                &span,
                &format!("{path}.event_retention"),
                "must be at least 1m: products poll the event feed every minute or so",
            );
        }
        Some(TargetConfig {
            name: name.to_string(),
            max_rate: 0.0,
            kind: TargetKind::Crowd(CrowdTargetConfig {
                description,
                event_retention,
                nested_groups: self.boolean(t, "nested_groups", path).unwrap_or(true),
            }),
        })
    }

    /// Exactly one flow feeds each crowd target (its ledger is what the products read), and
    /// that flow has nothing remote to reconcile against.
    pub(super) fn crowd_flows(
        &mut self,
        root: &dyn TableLike,
        targets: &BTreeMap<String, TargetConfig>,
        flows: &BTreeMap<String, FlowConfig>,
    ) {
        let raw_flows = root.get("flows").and_then(Item::as_table_like);
        // Flows as the file declares them (one with an error of its own still names its
        // target).
        let mut naming: BTreeMap<String, Vec<(String, Span)>> = BTreeMap::new();
        if let Some(fs) = raw_flows {
            for (flow, item) in fs.iter() {
                let Some(ft) = item.as_table_like() else {
                    continue;
                };
                if let Some(target) = ft.get("target").and_then(|v| v.as_str()) {
                    let span = ft.get("target").and_then(Item::span);
                    naming
                        .entry(target.to_string())
                        .or_default()
                        .push((flow.to_string(), span));
                }
            }
        }
        let raw_targets = root.get("targets").and_then(Item::as_table_like);
        for (name, target) in targets {
            if !target.kind.is_served() {
                continue;
            }
            let named = naming.get(name).map(Vec::as_slice).unwrap_or_default();
            match named {
                [] => {
                    let span = raw_targets
                        .and_then(|t| t.get_key_value(name))
                        .and_then(|(k, _)| k.span());
                    self.err(
                        &span,
                        &format!("targets.{name}"),
                        "a crowd target needs exactly one flow feeding it (none names it): \
                         the flow's result is the directory the products read",
                    );
                }
                [_] => {}
                [(first, _), rest @ ..] => {
                    for (flow, span) in rest {
                        self.err(
                            span,
                            &format!("flows.{flow}.target"),
                            format!(
                                "crowd target {name:?} is already fed by flow {first:?}: one flow \
                                 per crowd target (its ledger is the served directory)"
                            ),
                        );
                    }
                }
            }
            for (flow, _) in named {
                let Some(f) = flows.get(flow) else { continue };
                if f.full_reconcile_interval.is_some() {
                    let span = raw_flows
                        .and_then(|t| t.get(flow))
                        .and_then(Item::as_table_like)
                        .and_then(|t| t.get("full_reconcile_interval"))
                        .and_then(Item::span);
                    self.err(
                        &span,
                        &format!("flows.{flow}.full_reconcile_interval"),
                        format!(
                            "target {name:?} is served by idsync (type crowd): there is nothing \
                             remote to reconcile against; leave the key out"
                        ),
                    );
                }
            }
        }
    }
}
