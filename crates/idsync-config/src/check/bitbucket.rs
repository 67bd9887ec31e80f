//! `[targets.x] type = "bitbucket"`: Bitbucket Data Center's internal directory over its REST
//! API.

use super::{Checker, Span};
use crate::{BitbucketTargetConfig, TargetConfig, TargetKind};
use toml_edit::TableLike;

impl Checker<'_> {
    pub(super) fn bitbucket_target(
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
                "add_to_default_group",
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
        } = self.dc_connection(
            t,
            &path,
            anchor,
            "Bitbucket",
            "https://bitbucket.example.com",
        );
        let default_groups = self
            .str_array(t, "default_groups", &path)
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        let add_to_default_group = self
            .boolean(t, "add_to_default_group", &path)
            .unwrap_or(true);
        let record_prefix = match t.get("record_prefix") {
            None => "idsync-access-removed-".to_string(),
            Some(_) => self.non_empty(t, "record_prefix", &path, "the record groups' prefix")?,
        };
        let access_groups = self
            .str_array(t, "access_groups", &path)
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        Some(TargetConfig {
            name: name.to_string(),
            max_rate,
            kind: TargetKind::Bitbucket(BitbucketTargetConfig {
                url: url?.trim_end_matches('/').to_string(),
                auth: auth?,
                ca_file,
                timeout,
                concurrency: usize::try_from(concurrency).unwrap_or(4),
                default_groups,
                add_to_default_group,
                access_groups,
                record_prefix,
            }),
        })
    }
}
