//! The schema walk over the parsed document. Every check records its error and carries on.

mod store_keys;

use crate::*;
use std::ops::Range;
use toml_edit::{ImDocument, Item, TableLike, Value};

mod bamboo;
mod bitbucket;
mod confluence;
mod crowd;
mod dc;
mod flows;
mod jira;
mod login;
mod server;
mod sources;
mod sso;
mod sso_saml;
mod targets;
mod values;
use values::*;

type Span = Option<Range<usize>>;

pub(crate) struct Checker<'a> {
    text: &'a str,
    file: &'a Path,
    base: PathBuf,
    errors: Vec<ConfigError>,
}

const SOURCE_TYPES: &[&str] = &["file", "scim", "msgraph", "login"];
const TARGET_TYPES: &[&str] = &[
    "test",
    "scim",
    "crowd",
    "jira",
    "confluence",
    "bamboo",
    "bitbucket",
];

impl<'a> Checker<'a> {
    pub(crate) fn new(text: &'a str, file: &'a Path) -> Self {
        let base = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = std::path::absolute(&base).unwrap_or(base);
        Self {
            text,
            file,
            base,
            errors: Vec::new(),
        }
    }

    fn position(&self, span: &Span) -> (usize, usize) {
        let Some(span) = span else {
            return (1, 1);
        };
        let upto = &self.text[..span.start.min(self.text.len())];
        let line = upto.matches('\n').count() + 1;
        let column = upto
            .rfind('\n')
            .map_or(upto.chars().count(), |i| upto[i + 1..].chars().count())
            + 1;
        (line, column)
    }

    fn err(&mut self, span: &Span, key: &str, message: impl Into<String>) {
        let (line, column) = self.position(span);
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn run(mut self) -> Result<Config, ConfigErrors> {
        let doc = match ImDocument::parse(self.text.to_string()) {
            Ok(d) => d,
            Err(e) => {
                let span = e.span();
                let message = e.message().trim().to_string();
                let key = key_at(self.text, span.as_ref().map_or(0, |s| s.start));
                self.err(&span, &key, format!("invalid TOML: {message}"));
                return Err(ConfigErrors(self.errors));
            }
        };
        let root = doc.as_table();
        self.keys(
            root,
            "",
            &[
                "store",
                "server",
                "log",
                "notifications",
                "sources",
                "targets",
                "flows",
                "sso",
            ],
        );

        let store = self.store(root);
        let server = self.server(root);
        let log = self.log(root);
        let notifications = self.notifications(root);
        let sources = self.named(root, "sources", Self::source);
        let targets = self.named(root, "targets", Self::target);
        // Names declared in the file, checked or not: a source with an error of its own is
        // still declared, and a flow naming it gets no second, false error.
        let declared = |section: &str| -> std::collections::BTreeSet<String> {
            root.get(section)
                .and_then(Item::as_table_like)
                .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
                .unwrap_or_default()
        };
        let (declared_sources, declared_targets) = (declared("sources"), declared("targets"));
        let mut flows = self.named(root, "flows", Self::flow);

        // Cross references.
        let mut refs = Vec::new();
        if let Some(t) = root.get("flows").and_then(Item::as_table_like) {
            for (name, flow) in flows.iter_mut() {
                let ft = t.get(name).and_then(Item::as_table_like);
                let span_of = |k: &str| ft.and_then(|ft| ft.get(k)).and_then(Item::span);
                match sources.get(&flow.source) {
                    Some(s) => flow.directory = s.directory.clone(),
                    None if declared_sources.contains(&flow.source) => {}
                    None => refs.push((
                        span_of("source"),
                        format!("flows.{name}.source"),
                        format!(
                            "no source named {:?} (declared: {})",
                            flow.source,
                            list(declared_sources.iter())
                        ),
                    )),
                }
                if !declared_targets.contains(&flow.target) {
                    refs.push((
                        span_of("target"),
                        format!("flows.{name}.target"),
                        format!(
                            "no target named {:?} (declared: {})",
                            flow.target,
                            list(declared_targets.iter())
                        ),
                    ));
                }
            }
        }
        for (span, key, msg) in refs {
            self.err(&span, &key, msg);
        }
        self.crowd_flows(root, &targets, &flows);
        self.login_graph_refs(root, &sources);
        let sso = self.sso(root);
        if let (Some(sso), Some(store)) = (&sso, &store) {
            self.sso_refs(root, sso, store.secret_key.is_some(), &sources, &flows);
        }

        if !self.errors.is_empty() {
            self.errors.sort_by_key(|e| (e.line, e.column));
            return Err(ConfigErrors(self.errors));
        }
        let (Some(store), Some(server), Some(log), Some(notifications)) =
            (store, server, log, notifications)
        else {
            return Err(ConfigErrors(self.errors));
        };
        Ok(Config {
            file: self.file.to_path_buf(),
            store,
            server,
            log,
            notifications,
            sources,
            targets,
            flows,
            sso,
        })
    }

    // ------------------------------------------------------------------ sections

    fn store(&mut self, root: &dyn TableLike) -> Option<StoreConfig> {
        let t = self.section(root, "store")?;
        let Some(t) = t else {
            return Some(StoreConfig {
                path: self.base.join("idsync.db"),
                retention_days: 30,
                secret_key: None,
                previous_secret_keys: Vec::new(),
            });
        };
        self.keys(
            t,
            "store",
            &[
                "path",
                "retention_days",
                "secret_key",
                "previous_secret_keys",
            ],
        );
        let (secret_key, previous_secret_keys) = self.store_keys(t);
        let path = self
            .string(t, "path", "store")
            .map_or_else(|| self.base.join("idsync.db"), |p| self.base.join(p));
        let retention_days = self
            .int(t, "retention_days", "store", 1, 36_500)
            .unwrap_or(30);
        Some(StoreConfig {
            path,
            retention_days: u32::try_from(retention_days).unwrap_or(30),
            secret_key,
            previous_secret_keys,
        })
    }

    fn notifications(&mut self, root: &dyn TableLike) -> Option<NotificationsConfig> {
        let path = "notifications";
        let Some(t) = self.section(root, path)? else {
            return Some(NotificationsConfig::default());
        };
        self.keys(
            t,
            path,
            &[
                "events",
                "email_to",
                "email_from",
                "smtp_url",
                "smtp_username",
                "smtp_password",
                "webhook_url",
                "webhook_secret",
                "timeout",
            ],
        );
        let mut events = Vec::new();
        for (i, (e, span)) in self.str_array(t, "events", path).into_iter().enumerate() {
            match NotifyEvent::parse(&e) {
                Some(ev) => events.push(ev),
                None => self.err(
                    &span,
                    &format!("{path}.events[{i}]"),
                    format!("{e:?} is not one of: held, failed, quarantined"),
                ),
            }
        }
        if t.get("events").is_none() {
            events = NotifyEvent::ALL.to_vec();
        }
        let email_to: Vec<String> = self
            .str_array(t, "email_to", path)
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        let email_from = self.string(t, "email_from", path);
        let smtp_url = self.string(t, "smtp_url", path);
        let anchor = t.get("email_to").and_then(Item::span);
        if !email_to.is_empty() {
            if smtp_url.is_none() {
                self.err(&anchor, &format!("{path}.smtp_url"), "email_to needs smtp_url = \"smtp://host:25\" (or smtp://host:587?tls=required, smtps://host:465)");
            }
            if email_from.is_none() {
                self.err(
                    &anchor,
                    &format!("{path}.email_from"),
                    "email_to needs email_from = the sender address",
                );
            }
        }
        for (key, value) in [("smtp_url", &smtp_url)] {
            if let Some(u) = value {
                if !(u.starts_with("smtp://") || u.starts_with("smtps://")) {
                    let span = t.get(key).and_then(Item::span);
                    self.err(
                        &span,
                        &format!("{path}.{key}"),
                        // Not echoed: the value may hold credentials.
                        "not an smtp:// or smtps:// URL",
                    );
                }
            }
        }
        let webhook_url = self.string(t, "webhook_url", path);
        if let Some(u) = &webhook_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                let span = t.get("webhook_url").and_then(Item::span);
                self.err(
                    &span,
                    &format!("{path}.webhook_url"),
                    // Not echoed: webhook URLs often hold their secret.
                    "not an http(s) URL",
                );
            }
        }
        Some(NotificationsConfig {
            events,
            email_to,
            email_from,
            smtp_url,
            smtp_username: self.string(t, "smtp_username", path),
            smtp_password: self.string(t, "smtp_password", path).map(Secret::new),
            webhook_url,
            webhook_secret: self.string(t, "webhook_secret", path).map(Secret::new),
            timeout: self
                .duration(t, "timeout", path)
                .unwrap_or(Duration::from_secs(15)),
        })
    }

    fn log(&mut self, root: &dyn TableLike) -> Option<LogConfig> {
        let t = self.section(root, "log")?;
        let Some(t) = t else {
            return Some(LogConfig {
                level: "info".into(),
                json: false,
            });
        };
        self.keys(t, "log", &["level", "format"]);
        let level = self
            .choice(
                t,
                "level",
                "log",
                &["error", "warn", "info", "debug", "trace"],
            )
            .unwrap_or_else(|| "info".into());
        let json = self
            .choice(t, "format", "log", &["text", "json"])
            .is_some_and(|f| f == "json");
        Some(LogConfig { level, json })
    }
}
