//! `[targets.x] type = "confluence"`: Confluence Data Center's internal directory over its
//! REST API (decision 0036).

use super::{Checker, Span};
use crate::{
    ConfluenceDeactivation, ConfluenceTargetConfig, JiraAuth, Secret, TargetConfig, TargetKind,
};
use std::time::Duration;
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
        let url = self.non_empty(t, "url", &path, "Confluence's base URL");
        if url.is_none() && t.get("url").is_none() {
            self.err(
                anchor,
                &format!("{path}.url"),
                "required: Confluence's base URL (https://wiki.example.com, with its context path such as /confluence if any)",
            );
        }
        if let Some(u) = &url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                self.err(
                    &t.get("url").and_then(Item::span),
                    &format!("{path}.url"),
                    format!("{u:?} is not an http(s) URL"),
                );
            }
        }
        let token = self.non_empty(t, "token", &path, "the personal access token");
        let user = self.non_empty(t, "user", &path, "the user idsync signs in as");
        let password = self.non_empty(t, "password", &path, "the user's password");
        let given = |k: &str| t.get(k).is_some();
        let auth = match (token, user, password) {
            (Some(tok), None, None) if !given("user") && !given("password") => {
                Some(JiraAuth::Token(Secret::new(tok)))
            }
            (None, Some(user), Some(password)) if !given("token") => Some(JiraAuth::Basic {
                user,
                password: Secret::new(password),
            }),
            _ => {
                let err = if given("token") && (given("user") || given("password")) {
                    Some(("token", "give token, or user and password, not both"))
                } else if given("user") && !given("password") {
                    Some((
                        "password",
                        "required with user: the user's password, as ${env:NAME} or ${file:PATH}",
                    ))
                } else if given("password") && !given("user") {
                    Some((
                        "user",
                        "required with password: the user idsync signs in as",
                    ))
                } else if !given("token") && !given("user") && !given("password") {
                    Some(("token", "required: a personal access token (as ${env:NAME} or ${file:PATH}), or user and password"))
                } else {
                    // A value given empty: non_empty said so already.
                    None
                };
                if let Some((key, msg)) = err {
                    let span = t.get(key).and_then(Item::span).or_else(|| anchor.clone());
                    self.err(&span, &format!("{path}.{key}"), msg);
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
