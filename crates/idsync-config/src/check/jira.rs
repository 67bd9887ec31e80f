//! `[targets.x] type = "jira"`: Jira Data Center's internal directory over its REST API.

use super::{Checker, Span};
use crate::{JiraDeactivation, JiraTargetConfig, TargetConfig, TargetKind};
use toml_edit::{Item, TableLike};

impl Checker<'_> {
    pub(super) fn jira_target(
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
                "default_groups_for",
                "properties",
                "property_key",
                "deactivation",
                "access_groups",
                "lead_fallback",
            ],
        );
        let super::dc::DcConnection {
            url,
            auth,
            ca_file,
            timeout,
            concurrency,
            max_rate,
        } = self.dc_connection(t, &path, anchor, "Jira", "https://jira.example.com");
        let default_groups = self
            .str_array(t, "default_groups", &path)
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        let default_groups_all = self
            .choice(t, "default_groups_for", &path, &["new", "all"])
            .is_some_and(|c| c == "all");
        let properties = self.boolean(t, "properties", &path).unwrap_or(true);
        let property_key = match t.get("property_key") {
            None => "idsync".to_string(),
            Some(_) => {
                let k = self.non_empty(t, "property_key", &path, "the user property's key")?;
                if k.chars().count() > 255 {
                    self.err(
                        &t.get("property_key").and_then(Item::span),
                        &format!("{path}.property_key"),
                        "at most 255 characters (Jira's limit for a property key)",
                    );
                    return None;
                }
                k
            }
        };
        let deactivation = match self
            .choice(t, "deactivation", &path, &["auto", "active", "groups"])
            .as_deref()
        {
            Some("active") => JiraDeactivation::Active,
            Some("groups") => JiraDeactivation::Groups,
            _ => JiraDeactivation::Auto,
        };
        let access_groups = self
            .str_array(t, "access_groups", &path)
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        let lead_fallback = match t.get("lead_fallback") {
            None => None,
            Some(_) => Some(self.non_empty(
                t,
                "lead_fallback",
                &path,
                "the username that takes over the projects and components a deleted user leads",
            )?),
        };
        Some(TargetConfig {
            name: name.to_string(),
            max_rate,
            kind: TargetKind::Jira(JiraTargetConfig {
                url: url?.trim_end_matches('/').to_string(),
                auth: auth?,
                ca_file,
                timeout,
                concurrency: usize::try_from(concurrency).unwrap_or(4),
                default_groups,
                default_groups_all,
                properties,
                property_key,
                deactivation,
                access_groups,
                lead_fallback,
            }),
        })
    }
}
