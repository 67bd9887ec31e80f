//! `[targets.x] type = "jira"`: Jira Data Center's internal directory over its REST API.

use super::{Checker, Span};
use crate::{JiraAuth, JiraDeactivation, JiraTargetConfig, Secret, TargetConfig, TargetKind};
use std::time::Duration;
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
        let url = self.non_empty(t, "url", &path, "Jira's base URL");
        if url.is_none() && t.get("url").is_none() {
            self.err(
                anchor,
                &format!("{path}.url"),
                "required: Jira's base URL (https://jira.example.com, with its context path if any)",
            );
        }
        if let Some(u) = &url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                let span = t.get("url").and_then(Item::span);
                self.err(
                    &span,
                    &format!("{path}.url"),
                    format!("{u:?} is not an http(s) URL"),
                );
            }
        }
        let token = self.non_empty(t, "token", &path, "the personal access token");
        let user = self.non_empty(t, "user", &path, "the user idsync signs in as");
        let password = self.non_empty(t, "password", &path, "the user's password");
        let auth = match (token, user, password) {
            (Some(tok), None, None) => Some(JiraAuth::Token(Secret::new(tok))),
            (None, Some(user), Some(password)) => Some(JiraAuth::Basic {
                user,
                password: Secret::new(password),
            }),
            (Some(_), _, _) if t.get("user").is_some() || t.get("password").is_some() => {
                self.err(
                    &t.get("token").and_then(Item::span),
                    &format!("{path}.token"),
                    "give token, or user and password, not both",
                );
                None
            }
            (None, Some(_), None) if t.get("password").is_none() => {
                self.err(
                    &t.get("user").and_then(Item::span),
                    &format!("{path}.password"),
                    "required with user: the user's password, as ${env:NAME} or ${file:PATH}",
                );
                None
            }
            (None, None, Some(_)) if t.get("user").is_none() => {
                self.err(
                    &t.get("password").and_then(Item::span),
                    &format!("{path}.user"),
                    "required with password: the user idsync signs in as",
                );
                None
            }
            _ => {
                if t.get("token").is_none()
                    && t.get("user").is_none()
                    && t.get("password").is_none()
                {
                    self.err(
                        anchor,
                        &format!("{path}.token"),
                        "required: a personal access token (as ${env:NAME} or ${file:PATH}), or user and password",
                    );
                }
                None
            }
        };
        let ca_file = if t.get("ca_file").is_some() {
            self.existing_file(t, "ca_file", &path)
        } else {
            None
        };
        let timeout = self
            .duration(t, "timeout", &path)
            .unwrap_or(Duration::from_secs(30));
        let concurrency = self.int(t, "concurrency", &path, 1, 64).unwrap_or(4);
        let max_rate = self
            .float(t, "max_rate", &path, 0.0, 100_000.0)
            .unwrap_or(0.0);
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
