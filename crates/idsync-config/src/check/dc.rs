//! The keys every Atlassian Data Center target shares (`url`, `token` or `user` and
//! `password`, `ca_file`, `timeout`, `concurrency`, `max_rate`), checked one way for Jira,
//! Confluence, Bitbucket and Bamboo.

use super::{Checker, Span};
use crate::{JiraAuth, Secret};
use std::path::PathBuf;
use std::time::Duration;
use toml_edit::{Item, TableLike};

/// A Data Center target's connection settings, as far as they are valid (errors are reported).
pub(super) struct DcConnection {
    pub url: Option<String>,
    pub auth: Option<JiraAuth>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub concurrency: i64,
    pub max_rate: f64,
}

impl Checker<'_> {
    /// Check the shared keys of `[targets.x]` (at `path`) for `product` ("Jira"), whose base URL
    /// looks like `example` ("https://jira.example.com").
    pub(super) fn dc_connection(
        &mut self,
        t: &dyn TableLike,
        path: &str,
        anchor: &Span,
        product: &str,
        example: &str,
    ) -> DcConnection {
        let url = self.non_empty(t, "url", path, &format!("{product}'s base URL"));
        if url.is_none() && t.get("url").is_none() {
            self.err(
                anchor,
                &format!("{path}.url"),
                format!("required: {product}'s base URL ({example}, with its context path if any)"),
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
        let token = self.non_empty(t, "token", path, "the personal access token");
        let user = self.non_empty(t, "user", path, "the user idsync signs in as");
        let password = self.non_empty(t, "password", path, "the user's password");
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
                // (the key the error is about, the key whose line shows it, the message)
                let err = if given("token") && (given("user") || given("password")) {
                    Some((
                        "token",
                        "token",
                        "give token, or user and password, not both",
                    ))
                } else if given("user") && !given("password") {
                    Some((
                        "password",
                        "user",
                        "required with user: the user's password, as ${env:NAME} or ${file:PATH}",
                    ))
                } else if given("password") && !given("user") {
                    Some((
                        "user",
                        "password",
                        "required with password: the user idsync signs in as",
                    ))
                } else if !given("token") && !given("user") && !given("password") {
                    Some(("token", "", "required: a personal access token (as ${env:NAME} or ${file:PATH}), or user and password"))
                } else {
                    // A value given empty: non_empty said so already.
                    None
                };
                if let Some((key, at, msg)) = err {
                    let span = t.get(at).and_then(Item::span).or_else(|| anchor.clone());
                    self.err(&span, &format!("{path}.{key}"), msg);
                }
                None
            }
        };
        let ca_file = if t.get("ca_file").is_some() {
            self.existing_file(t, "ca_file", path)
        } else {
            None
        };
        let timeout = self
            .duration(t, "timeout", path)
            .unwrap_or(Duration::from_secs(30));
        let concurrency = self.int(t, "concurrency", path, 1, 64).unwrap_or(4);
        let max_rate = self
            .float(t, "max_rate", path, 0.0, 100_000.0)
            .unwrap_or(0.0);
        DcConnection {
            url,
            auth,
            ca_file,
            timeout,
            concurrency,
            max_rate,
        }
    }
}
