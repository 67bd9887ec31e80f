//! `[targets.x] type = "bamboo"`: Bamboo Data Center's internal directory over its admin REST
//! API.

use super::{Checker, Span};
use crate::{BambooTargetConfig, TargetConfig, TargetKind};
use toml_edit::{Item, TableLike};

impl Checker<'_> {
    pub(super) fn bamboo_target(
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
                "access_groups",
                "record_group",
            ],
        );
        let super::dc::DcConnection {
            url,
            auth,
            ca_file,
            timeout,
            concurrency,
            max_rate,
        } = self.dc_connection(t, &path, anchor, "Bamboo", "https://bamboo.example.com");
        let names = |c: &mut Self, key: &str| -> Vec<String> {
            c.str_array(t, key, &path)
                .into_iter()
                .map(|(g, _)| g)
                .collect()
        };
        let default_groups = names(self, "default_groups");
        let access_groups = names(self, "access_groups");
        let record_group = match t.get("record_group") {
            None => "idsync-disabled".to_string(),
            Some(_) => self.non_empty(
                t,
                "record_group",
                &path,
                "the group that marks users idsync disabled",
            )?,
        };
        if let Some(g) = access_groups
            .iter()
            .chain(&default_groups)
            .find(|g| g.eq_ignore_ascii_case(&record_group))
        {
            self.err(
                &t.get("record_group").and_then(Item::span),
                &format!("{path}.record_group"),
                format!("{g:?} is also an access or default group: the record group must be idsync's own"),
            );
            return None;
        }
        Some(TargetConfig {
            name: name.to_string(),
            max_rate,
            kind: TargetKind::Bamboo(BambooTargetConfig {
                url: url?.trim_end_matches('/').to_string(),
                auth: auth?,
                ca_file,
                timeout,
                concurrency: usize::try_from(concurrency).unwrap_or(4),
                default_groups,
                access_groups,
                record_group,
            }),
        })
    }
}
