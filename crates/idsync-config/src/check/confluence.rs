//! `[targets.x] type = "confluence"`: Confluence Data Center's internal directory over its
//! REST API (decision 0036).

use super::{Checker, Span};
use crate::{ConfluenceDeactivation, ConfluenceTargetConfig, TargetConfig, TargetKind};
use toml_edit::{Item, TableLike};

impl Checker<'_> {
    pub(super) fn confluence_target(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        anchor: &Span,
    ) -> Option<TargetConfig> {
        let path = format!("targets.{name}");
        self.keys(
            t,
            &path,
            &[
                "type",
                "url",
                "token",
                "user",
                "password",
                "ca_file",
                "timeout",
                "concurrency",
                "max_rate",
                "default_groups",
                "deactivation",
                "access_groups",
                "record_prefix",
            ],
        );
        let super::dc::DcConnection {
            url,
            auth,
            ca_file,
            timeout,
            concurrency,
            max_rate,
        } = self.dc_connection(t, &path, anchor, "Confluence", "https://wiki.example.com");
        let list = |c: &mut Self, key: &str| -> Vec<String> {
            c.str_array(t, key, &path)
                .into_iter()
                .map(|(g, _)| g)
                .collect()
        };
        let default_groups = list(self, "default_groups");
        let deactivation = match self
            .choice(t, "deactivation", &path, &["auto", "disable", "groups"])
            .as_deref()
        {
            Some("disable") => ConfluenceDeactivation::Disable,
            Some("groups") => ConfluenceDeactivation::Groups,
            _ => ConfluenceDeactivation::Auto,
        };
        let mut access_groups = list(self, "access_groups");
        if t.get("access_groups").is_none() {
            access_groups = vec!["confluence-users".to_string()];
        } else if access_groups.is_empty() {
            self.err(
                &t.get("access_groups").and_then(Item::span),
                &format!("{path}.access_groups"),
                "at least one group: the groups that grant \"Can use\" (confluence-users by default)",
            );
            return None;
        }
        let record_prefix = match t.get("record_prefix") {
            None => "idsync-access-removed-".to_string(),
            Some(_) => self.non_empty(
                t,
                "record_prefix",
                &path,
                "the prefix of the groups that record removed access groups",
            )?,
        };
        Some(TargetConfig {
            name: name.to_string(),
            max_rate,
            kind: TargetKind::Confluence(ConfluenceTargetConfig {
                url: url?.trim_end_matches('/').to_string(),
                auth: auth?,
                ca_file,
                timeout,
                concurrency: usize::try_from(concurrency).unwrap_or(4),
                default_groups,
                deactivation,
                access_groups,
                record_prefix,
            }),
        })
    }
}
