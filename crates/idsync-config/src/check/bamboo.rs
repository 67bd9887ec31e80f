//! `[targets.x] type = "bamboo"`: Bamboo Data Center's internal directory over its admin REST
//! API.

use super::{Checker, Span};
use crate::{BambooTargetConfig, JiraAuth, Secret, TargetConfig, TargetKind};
use std::time::Duration;
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
        let url = self.non_empty(t, "url", &path, "Bamboo's base URL");
        if url.is_none() && t.get("url").is_none() {
            self.err(
                anchor,
                &format!("{path}.url"),
                "required: Bamboo's base URL (https://bamboo.example.com, with its context path if any)",
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
                let (span, key, message) = if given("token") && (given("user") || given("password"))
                {
                    (
                        "token",
                        "token",
                        "give token, or user and password, not both",
                    )
                } else if given("user") && !given("password") {
                    (
                        "user",
                        "password",
                        "required with user: the user's password, as ${env:NAME} or ${file:PATH}",
                    )
                } else if given("password") && !given("user") {
                    (
                        "password",
                        "user",
                        "required with password: the user idsync signs in as",
                    )
                } else if !given("token") && !given("user") {
                    ("", "token", "required: a personal access token (as ${env:NAME} or ${file:PATH}), or user and password")
                } else {
                    // A value given but empty: non_empty said so.
                    ("", "", "")
                };
                if !key.is_empty() {
                    let s = if span.is_empty() {
                        anchor.clone()
                    } else {
                        t.get(span).and_then(Item::span)
                    };
                    self.err(&s, &format!("{path}.{key}"), message);
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
