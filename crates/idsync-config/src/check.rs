//! The schema walk over the parsed document. Every check records its error and carries on.

mod login;
mod store_keys;

use crate::*;
use std::ops::Range;
use toml_edit::{ImDocument, Item, TableLike, Value};

mod bamboo;
mod bitbucket;
mod confluence;
mod crowd;
mod dc;
mod jira;
mod server;

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

    fn source(&mut self, name: &str, t: &dyn TableLike, anchor: &Span) -> Option<SourceConfig> {
        let path = format!("sources.{name}");
        let kind = self.required_choice(t, "type", &path, SOURCE_TYPES, anchor)?;
        let common = ["type", "directory", "interval", "login_wait"];
        let directory = self
            .string(t, "directory", &path)
            .unwrap_or_else(|| name.to_string());
        if !valid_name(&directory) {
            let span = t.get("directory").and_then(Item::span);
            self.err(&span, &format!("{path}.directory"), format!("{directory:?} is not a valid name (lowercase letters, digits, - and _, at most 64)"));
        }
        let interval = self.duration(t, "interval", &path);
        let login_wait = self.login_wait(t, &path, &kind);
        match kind.as_str() {
            "login" => self.login_source(name, t, &path, directory, interval, login_wait),
            "scim" => {
                // A push source: idsync's SCIM endpoint at /scim/v2/<directory>/ writes into the
                // directory; tokens come from `idsync token create <directory>`.
                self.keys(
                    t,
                    &path,
                    &[common.as_slice(), &["profile", "verified_domains"]].concat(),
                );
                let profile = match self
                    .choice(t, "profile", &path, &["generic", "atlassian-cloud"])
                    .as_deref()
                {
                    Some("atlassian-cloud") => ScimProfile::AtlassianCloud,
                    _ => ScimProfile::Generic,
                };
                let verified_domains: Vec<String> = self
                    .str_array(t, "verified_domains", &path)
                    .into_iter()
                    .map(|(d, _)| d.to_ascii_lowercase())
                    .collect();
                if !verified_domains.is_empty() && profile != ScimProfile::AtlassianCloud {
                    let span = t.get("verified_domains").and_then(Item::span);
                    self.err(
                        &span,
                        &format!("{path}.verified_domains"),
                        "verified domains are an Atlassian Cloud rule: set profile = \"atlassian-cloud\"",
                    );
                }
                if interval.is_some() {
                    let span = t.get("interval").and_then(Item::span);
                    self.err(
                        &span,
                        &format!("{path}.interval"),
                        "a scim source is pushed to; it has no schedule",
                    );
                }
                Some(SourceConfig {
                    name: name.to_string(),
                    directory,
                    interval: None,
                    kind: SourceKind::Scim(ScimSourceConfig {
                        profile,
                        verified_domains,
                    }),
                    login_wait,
                })
            }
            "msgraph" => {
                let kind = self.msgraph(t, &path, anchor, &common)?;
                Some(SourceConfig {
                    name: name.to_string(),
                    directory,
                    interval,
                    kind: SourceKind::MsGraph(kind),
                    login_wait,
                })
            }
            "file" => {
                self.keys(
                    t,
                    &path,
                    &[
                        &common[..],
                        &["format", "path", "users", "groups", "memberships"],
                    ]
                    .concat(),
                );
                let file = |c: &mut Self, k: &str| c.string(t, k, &path).map(|p| c.base.join(p));
                let p = file(self, "path");
                let users = file(self, "users");
                let groups = file(self, "groups");
                let memberships = file(self, "memberships");
                let format = match self.choice(t, "format", &path, &["json", "csv"]).as_deref() {
                    Some("json") => FileFormat::Json,
                    Some(_) => FileFormat::Csv,
                    None => match (&p, &users) {
                        (Some(p), _)
                            if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) =>
                        {
                            FileFormat::Csv
                        }
                        (None, Some(_)) => FileFormat::Csv,
                        _ => FileFormat::Json,
                    },
                };
                let (users, p) = match (format, p, users) {
                    (FileFormat::Csv, Some(p), None) => (Some(p), None),
                    (_, p, u) => (u, p),
                };
                match format {
                    FileFormat::Json if p.is_none() => self.err(
                        anchor,
                        &format!("{path}.path"),
                        "a JSON file source needs path = \"people.json\"",
                    ),
                    FileFormat::Csv if users.is_none() => self.err(
                        anchor,
                        &format!("{path}.users"),
                        "a CSV file source needs users = \"users.csv\"",
                    ),
                    _ => {}
                }
                Some(SourceConfig {
                    name: name.to_string(),
                    directory,
                    interval,
                    kind: SourceKind::File(FileSourceConfig {
                        format,
                        path: p,
                        users,
                        groups,
                        memberships,
                    }),
                    login_wait,
                })
            }
            _ => None,
        }
    }

    fn msgraph(
        &mut self,
        t: &dyn TableLike,
        path: &str,
        anchor: &Span,
        common: &[&str],
    ) -> Option<MsGraphSourceConfig> {
        self.keys(
            t,
            path,
            &[
                common,
                &[
                    "tenant",
                    "client_id",
                    "client_secret",
                    "client_certificate",
                    "client_certificate_key",
                    "cloud",
                    "authority",
                    "graph_url",
                    "token_scope",
                    "ca_file",
                    "scope",
                    "groups",
                    "app_id",
                    "group_filter",
                    "user_name",
                    "key",
                    "extensions",
                    "tenant_type",
                    "delta",
                    "budget",
                    "concurrency",
                    "timeout",
                ],
            ]
            .concat(),
        );
        let required = |c: &mut Self, key: &str, what: &str| {
            let v = c.non_empty(t, key, path, what);
            if v.is_none() && t.get(key).is_none() {
                c.err(
                    anchor,
                    &format!("{path}.{key}"),
                    format!("required: {what}"),
                );
            }
            v
        };
        let tenant = required(
            self,
            "tenant",
            "the tenant id or a verified domain (contoso.onmicrosoft.com)",
        );
        let client_id = required(
            self,
            "client_id",
            "the application (client) id of the app registration",
        );
        let secret = self.non_empty(t, "client_secret", path, "the client secret's value");
        let read_pem = |c: &mut Self, key: &str| -> Option<(PathBuf, Secret)> {
            let name = c.string(t, key, path)?;
            let file = c.base.join(name);
            match std::fs::read_to_string(&file) {
                Ok(text) => Some((file, Secret::new(text))),
                Err(e) => {
                    let span = t.get(key).and_then(Item::span);
                    c.err(
                        &span,
                        &format!("{path}.{key}"),
                        format!("cannot read {}: {e}", file.display()),
                    );
                    None
                }
            }
        };
        let certificate = read_pem(self, "client_certificate");
        let certificate_key = read_pem(self, "client_certificate_key");
        if t.get("client_certificate_key").is_some() && t.get("client_certificate").is_none() {
            let span = t.get("client_certificate_key").and_then(Item::span);
            self.err(
                &span,
                &format!("{path}.client_certificate_key"),
                "a key without client_certificate: name the certificate file too",
            );
        }
        let credential = match (secret, certificate) {
            (Some(_), Some(_)) => {
                let span = t.get("client_certificate").and_then(Item::span);
                self.err(
                    &span,
                    &format!("{path}.client_certificate"),
                    "give client_secret or client_certificate, not both",
                );
                None
            }
            (Some(s), None) => Some(GraphCredential::Secret(Secret::new(s))),
            (None, Some((file, pem))) => Some(GraphCredential::Certificate {
                file,
                pem,
                key: certificate_key,
            }),
            (None, None) => {
                if t.get("client_secret").is_none() && t.get("client_certificate").is_none() {
                    self.err(
                        anchor,
                        &format!("{path}.client_secret"),
                        "required: the client secret's value as ${env:NAME} or ${file:PATH}, or client_certificate = a PEM file with the app's certificate and private key",
                    );
                }
                None
            }
        };
        let cloud = self
            .choice(t, "cloud", path, &["global", "usgov", "usgov-dod", "china"])
            .unwrap_or_else(|| "global".into());
        let url = |c: &mut Self, key: &str| {
            let u = c.string(t, key, path)?;
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                let span = t.get(key).and_then(Item::span);
                c.err(
                    &span,
                    &format!("{path}.{key}"),
                    format!("{u:?} is not an http(s) URL"),
                );
                return None;
            }
            Some(u.trim_end_matches('/').to_string())
        };
        let authority = url(self, "authority");
        let graph_url = url(self, "graph_url");
        let token_scope = self.string(t, "token_scope", path);
        if let Some(s) = &token_scope {
            if s.trim().is_empty() || s.chars().any(char::is_whitespace) {
                let span = t.get("token_scope").and_then(Item::span);
                self.err(
                    &span,
                    &format!("{path}.token_scope"),
                    format!("{s:?} is not a scope: give one resource's scope, such as \"https://graph.microsoft.com/.default\""),
                );
            }
        }
        let ca_file = self.existing_file(t, "ca_file", path);
        let scope_kind = self
            .choice(t, "scope", path, &["all", "groups", "app"])
            .unwrap_or_else(|| "all".into());
        let groups: Vec<String> = self
            .str_array(t, "groups", path)
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        let app_id = self.non_empty(
            t,
            "app_id",
            path,
            "the enterprise application's application id",
        );
        let scope = match scope_kind.as_str() {
            "groups" => {
                if groups.is_empty() {
                    self.err(
                        anchor,
                        &format!("{path}.groups"),
                        "scope = \"groups\" needs groups = [\"Group name\", ...]",
                    );
                }
                MsGraphScope::Groups(groups)
            }
            "app" => match app_id {
                Some(a) => MsGraphScope::App(a),
                None => {
                    self.err(anchor, &format!("{path}.app_id"), "scope = \"app\" needs app_id = the enterprise application's application id");
                    MsGraphScope::App(String::new())
                }
            },
            _ => MsGraphScope::All,
        };
        let group_filter = self.string(t, "group_filter", path);
        if let Some(f) = &group_filter {
            if let Err(e) = regex::Regex::new(f) {
                let span = t.get("group_filter").and_then(Item::span);
                self.err(
                    &span,
                    &format!("{path}.group_filter"),
                    format!("not a regular expression: {e}"),
                );
            }
        }
        let identity_choice = |c: &mut Self, key: &str, plain: &[&str], default: &str| {
            let v = c
                .string(t, key, path)
                .unwrap_or_else(|| default.to_string());
            let ok = plain.contains(&v.as_str())
                || v.strip_prefix("identity:").is_some_and(|k| !k.is_empty());
            if !ok {
                let span = t.get(key).and_then(Item::span);
                c.err(
                    &span,
                    &format!("{path}.{key}"),
                    format!(
                        "{v:?} is not one of: {}, identity:<signInType>",
                        plain.join(", ")
                    ),
                );
            }
            v
        };
        let user_name = identity_choice(
            self,
            "user_name",
            &["userPrincipalName", "mail"],
            "userPrincipalName",
        );
        let key = identity_choice(self, "key", &["objectId"], "objectId");
        let extensions = self
            .str_array(t, "extensions", path)
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        let b2c = self
            .choice(t, "tenant_type", path, &["entra", "b2c", "external-id"])
            .is_some_and(|k| k != "entra");
        let delta = self.boolean(t, "delta", path).unwrap_or(!b2c);
        if delta && b2c {
            let span = t.get("delta").and_then(Item::span);
            self.err(
                &span,
                &format!("{path}.delta"),
                "B2C and External ID tenants have no delta queries",
            );
        }
        let budget = self.int(t, "budget", path, 100, 8_000).unwrap_or(3_000);
        let concurrency = self.int(t, "concurrency", path, 1, 64).unwrap_or(8);
        let timeout = self
            .duration(t, "timeout", path)
            .unwrap_or(Duration::from_secs(60));
        Some(MsGraphSourceConfig {
            tenant: tenant?,
            client_id: client_id?,
            credential: credential?,
            cloud,
            authority,
            graph_url,
            token_scope,
            ca_file,
            scope,
            group_filter,
            user_name,
            key,
            extensions,
            b2c,
            delta,
            budget: u32::try_from(budget).unwrap_or(3_000),
            concurrency: usize::try_from(concurrency).unwrap_or(8),
            timeout,
        })
    }

    fn target(&mut self, name: &str, t: &dyn TableLike, anchor: &Span) -> Option<TargetConfig> {
        let path = format!("targets.{name}");
        let kind = self.required_choice(t, "type", &path, TARGET_TYPES, anchor)?;
        match kind.as_str() {
            "crowd" => self.crowd_target(name, t, &path),
            "jira" => self.jira_target(name, t, anchor),
            "confluence" => self.confluence_target(name, t, anchor),
            "bamboo" => self.bamboo_target(name, t, anchor),
            "bitbucket" => self.bitbucket_target(name, t, anchor),
            "scim" => {
                self.keys(
                    t,
                    &path,
                    &[
                        "type",
                        "url",
                        "token",
                        "profile",
                        "user_match",
                        "member_batch",
                        "verified_domains",
                        "timeout",
                        "max_rate",
                        "omit",
                        "required_name_formatted",
                        "members_in_create",
                    ],
                );
                let url = self.non_empty(t, "url", &path, "the service's SCIM base URL");
                if url.is_none() && t.get("url").is_none() {
                    self.err(anchor, &format!("{path}.url"), "required: the service's SCIM base URL (Atlassian Cloud: https://api.atlassian.com/scim/directory/<id>)");
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
                let token = self.non_empty(t, "token", &path, "the bearer token");
                if token.is_none() && t.get("token").is_none() {
                    self.err(
                        anchor,
                        &format!("{path}.token"),
                        "required: the bearer token, as ${env:NAME} or ${file:PATH}",
                    );
                }
                let profile = match self
                    .choice(t, "profile", &path, &["generic", "atlassian-cloud"])
                    .as_deref()
                {
                    Some("atlassian-cloud") => ScimProfile::AtlassianCloud,
                    _ => ScimProfile::Generic,
                };
                let matches = self.str_array(t, "user_match", &path);
                let mut user_match = Vec::new();
                for (i, (m, span)) in matches.iter().enumerate() {
                    match m.as_str() {
                        "userName" => user_match.push(UserMatch::UserName),
                        "email" => user_match.push(UserMatch::Email),
                        other => self.err(
                            span,
                            &format!("{path}.user_match[{i}]"),
                            format!("{other:?} is not one of: userName, email"),
                        ),
                    }
                }
                if t.get("user_match").is_none() {
                    user_match = match profile {
                        // Atlassian Cloud matches users by email.
                        ScimProfile::AtlassianCloud => vec![UserMatch::Email, UserMatch::UserName],
                        ScimProfile::Generic => vec![UserMatch::UserName, UserMatch::Email],
                    };
                }
                let member_batch = self.int(t, "member_batch", &path, 1, 1000).unwrap_or(100);
                let verified_domains = self
                    .str_array(t, "verified_domains", &path)
                    .into_iter()
                    .map(|(d, _)| d)
                    .collect();
                let timeout = self
                    .duration(t, "timeout", &path)
                    .unwrap_or(Duration::from_secs(30));
                let max_rate = self
                    .float(t, "max_rate", &path, 0.0, 100_000.0)
                    .unwrap_or(0.0);
                let omit = self.omit(t, &path);
                let required_name_formatted = self
                    .boolean(t, "required_name_formatted", &path)
                    .unwrap_or(false);
                if required_name_formatted
                    && omit.iter().any(|o| o == "name" || o == "name.formatted")
                {
                    self.err(
                        &t.get("required_name_formatted").and_then(Item::span),
                        &format!("{path}.required_name_formatted"),
                        "cannot be true while omit leaves name.formatted out",
                    );
                }
                let members_in_create = self.boolean(t, "members_in_create", &path).unwrap_or(true);
                Some(TargetConfig {
                    name: name.to_string(),
                    max_rate,
                    kind: TargetKind::Scim(ScimTargetConfig {
                        url: url?.trim_end_matches('/').to_string(),
                        token: Secret::new(token?),
                        profile,
                        user_match,
                        member_batch: usize::try_from(member_batch).unwrap_or(100),
                        verified_domains,
                        timeout,
                        omit,
                        required_name_formatted,
                        members_in_create,
                    }),
                })
            }
            "test" => {
                self.keys(
                    t,
                    &path,
                    &[
                        "type",
                        "journal",
                        "fail_rate",
                        "reject_user_names",
                        "accept_rate",
                        "max_rate",
                        "drop_attributes",
                        "compute_attributes",
                        "no_patch",
                        "fail_every",
                        "refuse_attributes",
                        "members_in_create",
                        "requires_members_on_create",
                    ],
                );
                let journal = self
                    .non_empty(t, "journal", &path, "the journal file")
                    .map(|p| self.base.join(p));
                if journal.is_none() && t.get("journal").is_none() {
                    self.err(
                        anchor,
                        &format!("{path}.journal"),
                        "required: the file where the test target keeps its state",
                    );
                }
                let fail_rate = self.float(t, "fail_rate", &path, 0.0, 1.0).unwrap_or(0.0);
                let reject_user_names = self.str_array(t, "reject_user_names", &path);
                for (i, (p, span)) in reject_user_names.iter().enumerate() {
                    if let Err(e) = regex::Regex::new(p) {
                        self.err(
                            span,
                            &format!("{path}.reject_user_names[{i}]"),
                            format!("invalid regular expression: {}", one_line(&e.to_string())),
                        );
                    }
                }
                let accept_rate = self.int(t, "accept_rate", &path, 0, 1_000_000).unwrap_or(0);
                let mut quirk = |key: &str, known: &[&str]| -> Vec<String> {
                    let values = self.str_array(t, key, &path);
                    for (i, (v, span)) in values.iter().enumerate() {
                        if !known.contains(&v.as_str()) {
                            self.err(
                                span,
                                &format!("{path}.{key}[{i}]"),
                                format!("unknown attribute {v:?} (one of: {})", known.join(", ")),
                            );
                        }
                    }
                    values.into_iter().map(|(v, _)| v).collect()
                };
                let drop_attributes = quirk(
                    "drop_attributes",
                    &["title", "department", "emails.type", "externalId"],
                );
                let compute_attributes = quirk("compute_attributes", &["name.formatted"]);
                let refuse_attributes = quirk("refuse_attributes", OMITTABLE_USER_ATTRIBUTES);
                let no_patch = self.boolean(t, "no_patch", &path).unwrap_or(false);
                let members_in_create =
                    self.boolean(t, "members_in_create", &path).unwrap_or(false);
                let requires_members_on_create = self
                    .boolean(t, "requires_members_on_create", &path)
                    .unwrap_or(false);
                let fail_every = self.fail_every(t, &path);
                let max_rate = self
                    .float(t, "max_rate", &path, 0.0, 100_000.0)
                    .unwrap_or(0.0);
                Some(TargetConfig {
                    name: name.to_string(),
                    max_rate,
                    kind: TargetKind::Test(TestTargetConfig {
                        journal: journal?,
                        fail_rate,
                        reject_user_names: reject_user_names.into_iter().map(|(p, _)| p).collect(),
                        accept_rate: u32::try_from(accept_rate).unwrap_or(0),
                        drop_attributes,
                        compute_attributes,
                        no_patch,
                        fail_every,
                        refuse_attributes,
                        members_in_create,
                        requires_members_on_create,
                    }),
                })
            }
            _ => None,
        }
    }

    /// A SCIM target's `omit`: user attributes never sent, each known and optional.
    fn omit(&mut self, t: &dyn TableLike, path: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, (a, span)) in self.str_array(t, "omit", path).into_iter().enumerate() {
            let key = format!("{path}.omit[{i}]");
            if crate::OMITTABLE_USER_ATTRIBUTES.contains(&a.as_str()) {
                if !out.contains(&a) {
                    out.push(a);
                }
                continue;
            }
            let top = a.split('.').next().unwrap_or("");
            let message = if ["userName", "active", "id", "schemas", "meta"].contains(&top) {
                format!(
                    "{a:?} cannot be left out: idsync matches, deprovisions and reads users by it"
                )
            } else {
                format!(
                    "{a:?} is not a user attribute idsync sends (one of: {})",
                    crate::OMITTABLE_USER_ATTRIBUTES.join(", ")
                )
            };
            self.err(&span, &key, message);
        }
        out
    }

    /// The test target's `fail_every` table: operation kind = "STATUS detail".
    fn fail_every(&mut self, t: &dyn TableLike, path: &str) -> Vec<(String, u16, String)> {
        const KINDS: [&str; 8] = [
            "create_user",
            "update_user",
            "delete_user",
            "create_group",
            "update_group",
            "delete_group",
            "add_members",
            "remove_members",
        ];
        let Some(item) = t.get("fail_every") else {
            return Vec::new();
        };
        let key = format!("{path}.fail_every");
        let Some(table) = item.as_table_like() else {
            self.err(
                &item.span(),
                &key,
                "a table of operation kind = \"STATUS detail\"",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (kind, v) in table.iter() {
            let span = v.span();
            if !KINDS.contains(&kind) {
                self.err(
                    &span,
                    &format!("{key}.{kind}"),
                    format!("not an operation kind: one of {}", KINDS.join(", ")),
                );
                continue;
            }
            let parsed = v.as_str().and_then(|s| {
                let (status, detail) = s.trim().split_once(' ').unwrap_or((s.trim(), ""));
                let status: u16 = status.parse().ok().filter(|n| (400..600).contains(n))?;
                Some((status, detail.trim().to_string()))
            });
            match parsed {
                Some((status, detail)) => out.push((kind.to_string(), status, detail)),
                None => self.err(
                    &span,
                    &format!("{key}.{kind}"),
                    "\"STATUS detail\" with an HTTP status from 400 to 599",
                ),
            }
        }
        out
    }

    fn flow(&mut self, name: &str, t: &dyn TableLike, anchor: &Span) -> Option<FlowConfig> {
        let path = format!("flows.{name}");
        self.keys(
            t,
            &path,
            &[
                "source",
                "target",
                "deprovision",
                "delete_after_days",
                "deprovision_memberships",
                "keep_memberships_in",
                "group_deletion",
                "group_rename",
                "member_batch",
                "concurrency",
                "max_retries",
                "full_reconcile_interval",
                "enabled",
                "deletion_threshold",
                "deletion_threshold_percent",
                "mapping",
                "scope",
                "groups",
                "inactive_after",
                "inactive_exempt",
            ],
        );
        let source = self.string(t, "source", &path);
        if source.is_none() && t.get("source").is_none() {
            self.err(
                anchor,
                &format!("{path}.source"),
                "required: the source whose directory this flow provisions",
            );
        }
        let target = self.string(t, "target", &path);
        if target.is_none() && t.get("target").is_none() {
            self.err(
                anchor,
                &format!("{path}.target"),
                "required: the target this flow provisions",
            );
        }
        let deprovision = match self
            .choice(
                t,
                "deprovision",
                &path,
                &["disable", "delete", "delete_after", "anonymize", "none"],
            )
            .as_deref()
        {
            Some("delete") => DeprovisionAction::Delete,
            Some("none") => DeprovisionAction::Nothing,
            Some("anonymize") => DeprovisionAction::Anonymize,
            Some("delete_after") => {
                let days = self.int(t, "delete_after_days", &path, 1, 3650);
                if days.is_none() && t.get("delete_after_days").is_none() {
                    let span = t.get("deprovision").and_then(Item::span);
                    self.err(
                        &span,
                        &format!("{path}.delete_after_days"),
                        "deprovision = \"delete_after\" needs delete_after_days = the grace period in days",
                    );
                }
                DeprovisionAction::DeleteAfter {
                    days: u32::try_from(days.unwrap_or(30)).unwrap_or(30),
                }
            }
            _ => DeprovisionAction::Disable,
        };
        let mut memberships = idsync_core::scope::MembershipPolicy {
            keep: self
                .choice(t, "deprovision_memberships", &path, &["remove", "keep"])
                .is_some_and(|c| c == "keep")
                || deprovision == DeprovisionAction::Nothing,
            keep_in: Vec::new(),
        };
        for (i, (p, span)) in self
            .str_array(t, "keep_memberships_in", &path)
            .into_iter()
            .enumerate()
        {
            match idsync_core::scope::GroupPattern::parse(&p) {
                Ok(g) => memberships.keep_in.push(g),
                Err(e) => self.err(
                    &span,
                    &format!("{path}.keep_memberships_in[{i}]"),
                    e.to_string(),
                ),
            }
        }
        let group_deletion = match self
            .choice(t, "group_deletion", &path, &["keep", "delete"])
            .as_deref()
        {
            Some("delete") => GroupDeletion::Delete,
            _ => GroupDeletion::Keep,
        };
        let group_rename = match self
            .choice(t, "group_rename", &path, &["keep", "recreate"])
            .as_deref()
        {
            Some("recreate") => idsync_core::GroupRename::Recreate,
            _ => idsync_core::GroupRename::Keep,
        };
        let member_batch = self.int(t, "member_batch", &path, 1, 1000).unwrap_or(100);
        let concurrency = self.int(t, "concurrency", &path, 1, 64).unwrap_or(8);
        let max_retries = self.int(t, "max_retries", &path, 0, 20).unwrap_or(5);
        let full_reconcile_interval = self.duration(t, "full_reconcile_interval", &path);
        let enabled = self.boolean(t, "enabled", &path).unwrap_or(true);
        let mapping = self.mapping(t, &path);
        let scope = self.scope(t, &path);
        let groups = self.group_rules(t, &path);
        let inactivity = self.inactivity(t, &path);
        let defaults = idsync_core::DeletionThreshold::default();
        let deletion_threshold = idsync_core::DeletionThreshold {
            count: match self.int(t, "deletion_threshold", &path, 0, 100_000_000) {
                Some(n) => usize::try_from(n).ok(),
                None => defaults.count,
            },
            percent: self
                .float(t, "deletion_threshold_percent", &path, 0.0, 100.0)
                .or(defaults.percent),
        };
        Some(FlowConfig {
            name: name.to_string(),
            source: source?,
            directory: String::new(),
            target: target?,
            deprovision,
            group_deletion,
            group_rename,
            member_batch: usize::try_from(member_batch).unwrap_or(100),
            concurrency: usize::try_from(concurrency).unwrap_or(8),
            max_retries: u32::try_from(max_retries).unwrap_or(5),
            full_reconcile_interval,
            enabled,
            deletion_threshold,
            mapping,
            scope,
            memberships,
            groups,
            inactivity,
        })
    }

    /// `[flows.x.groups]`: group rules.
    fn group_rules(&mut self, t: &dyn TableLike, path: &str) -> idsync_core::groups::GroupRules {
        use idsync_core::groups::{GroupRules, Unmatched};
        use idsync_core::scope::GroupPattern;
        let mut out = GroupRules::default();
        let Some(item) = t.get("groups") else {
            return out;
        };
        let gpath = format!("{path}.groups");
        let Some(g) = item.as_table_like() else {
            self.err(&item.span(), &gpath, "expected a table of group rules");
            return out;
        };
        self.keys(
            g,
            &gpath,
            &[
                "mode",
                "map",
                "rename",
                "include",
                "exclude",
                "required",
                "default_groups",
                "default_groups_new",
                "names",
                "unmatched",
                "memberships",
            ],
        );
        out.manual = self
            .choice(g, "mode", &gpath, &["on_the_fly", "manual"])
            .is_some_and(|m| m == "manual");
        out.unmatched = match self
            .choice(
                g,
                "unmatched",
                &gpath,
                &["ignore", "keep", "clear", "leave_out"],
            )
            .as_deref()
        {
            Some("keep") => Unmatched::Keep,
            Some("clear") => Unmatched::Clear,
            Some("leave_out") => Unmatched::LeaveOut,
            _ => Unmatched::Ignore,
        };
        out.keep_manual = self
            .choice(g, "memberships", &gpath, &["authoritative", "keep_manual"])
            .is_some_and(|m| m == "keep_manual");
        let patterns = |c: &mut Self, key: &str| -> Vec<GroupPattern> {
            let mut v = Vec::new();
            for (i, (p, span)) in c.str_array(g, key, &gpath).into_iter().enumerate() {
                match GroupPattern::parse(&p) {
                    Ok(x) => v.push(x),
                    Err(e) => c.err(&span, &format!("{gpath}.{key}[{i}]"), e.to_string()),
                }
            }
            v
        };
        out.include = patterns(self, "include");
        out.exclude = patterns(self, "exclude");
        out.required = patterns(self, "required");
        out.default_all = self
            .str_array(g, "default_groups", &gpath)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        out.default_new = self
            .str_array(g, "default_groups_new", &gpath)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        // map = { "source group" = ["target", ...] } and names = { "id" = "name" }.
        for (key, is_map) in [("map", true), ("names", false)] {
            let Some(item) = g.get(key) else {
                continue;
            };
            let Some(mt) = item.as_table_like() else {
                self.err(&item.span(), &format!("{gpath}.{key}"), "expected a table");
                continue;
            };
            for (k, v) in mt.iter() {
                let kpath = format!("{gpath}.{key}.{k}");
                if is_map {
                    let targets: Option<Vec<String>> = match v.as_str() {
                        Some(one) => Some(vec![one.to_string()]),
                        None => v.as_array().map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        }),
                    };
                    match targets {
                        Some(list) if !list.is_empty() => {
                            out.map.insert(k.to_string(), list);
                        }
                        _ => self.err(
                            &v.span(),
                            &kpath,
                            "expected a target group name or a list of them",
                        ),
                    }
                } else {
                    match v.as_str() {
                        Some(name) => {
                            out.names.insert(k.to_string(), name.to_string());
                        }
                        None => self.err(&v.span(), &kpath, "expected the group's name"),
                    }
                }
            }
        }
        if let Some(item) = g.get("rename") {
            match item.as_array() {
                None => self.err(
                    &item.span(),
                    &format!("{gpath}.rename"),
                    "expected [{ pattern = \"...\", replacement = \"...\" }, ...]",
                ),
                Some(a) => {
                    for (i, r) in a.iter().enumerate() {
                        let rpath = format!("{gpath}.rename[{i}]");
                        let pair = r.as_inline_table().and_then(|it| {
                            Some((
                                it.get("pattern")?.as_str()?.to_string(),
                                it.get("replacement")?.as_str()?.to_string(),
                            ))
                        });
                        match pair {
                            None => self.err(
                                &r.span(),
                                &rpath,
                                "expected { pattern = \"...\", replacement = \"...\" }",
                            ),
                            Some((p, rep)) => match regex::Regex::new(&p) {
                                Ok(re) => out.rename.push((re, rep)),
                                Err(e) => self.err(
                                    &r.span(),
                                    &rpath,
                                    format!("{p:?} is not a regular expression: {e}"),
                                ),
                            },
                        }
                    }
                }
            }
        }
        out
    }

    /// `[[flows.x.scope]]`: clause groups. A user in any group (all its clauses hold) is in
    /// scope: `clauses = [{ attribute = "department", operator = "equals", value = "Sales" }]`.
    fn scope(&mut self, t: &dyn TableLike, path: &str) -> idsync_core::scope::Scope {
        use idsync_core::scope::{Clause, Scope};
        let mut out = Scope::default();
        let Some(item) = t.get("scope") else {
            return out;
        };
        let tables: Vec<&dyn TableLike> = match item {
            Item::ArrayOfTables(a) => a.iter().map(|t| t as &dyn TableLike).collect(),
            Item::Value(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
                .collect(),
            _ => {
                self.err(
                    &item.span(),
                    &format!("{path}.scope"),
                    "expected [[flows.<name>.scope]] tables, each with clauses = [...]",
                );
                return out;
            }
        };
        for (g, table) in tables.into_iter().enumerate() {
            let gpath = format!("{path}.scope[{g}]");
            self.keys(table, &gpath, &["clauses"]);
            let Some(clauses) = table.get("clauses").and_then(Item::as_array) else {
                self.err(&table.get("clauses").and_then(Item::span), &format!("{gpath}.clauses"), "required: clauses = [{ attribute = \"...\", operator = \"equals\", value = \"...\" }, ...]");
                continue;
            };
            let mut group = Vec::new();
            for (i, c) in clauses.iter().enumerate() {
                let cpath = format!("{gpath}.clauses[{i}]");
                let Some(ct) = c.as_inline_table() else {
                    self.err(
                        &c.span(),
                        &cpath,
                        "expected { attribute = ..., operator = ..., value = ... }",
                    );
                    continue;
                };
                self.keys(ct, &cpath, &["attribute", "operator", "value", "values"]);
                let attribute = ct.get("attribute").and_then(Value::as_str);
                let operator = ct.get("operator").and_then(Value::as_str);
                let (Some(attribute), Some(operator)) = (attribute, operator) else {
                    self.err(&c.span(), &cpath, "needs attribute and operator");
                    continue;
                };
                let value = ct.get("value").and_then(|v| match v {
                    Value::String(s) => Some(s.value().clone()),
                    Value::Integer(n) => Some(n.value().to_string()),
                    Value::Float(f) => Some(f.value().to_string()),
                    Value::Boolean(b) => Some(b.value().to_string()),
                    _ => None,
                });
                let values: Option<Vec<String>> =
                    ct.get("values").and_then(Value::as_array).map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    });
                match Clause::new(attribute, operator, value.as_deref(), values.as_deref()) {
                    Ok(clause) => group.push(clause),
                    Err(e) => self.err(&c.span(), &cpath, e.to_string()),
                }
            }
            if !group.is_empty() {
                out.groups.push(group);
            }
        }
        out
    }

    /// `[flows.x.mapping]`: target attribute = "expression", or = { expression = "...",
    /// apply = "always" | "on_create" }. Every expression is compiled here, so its errors come
    /// with the flow, the attribute, the line and the column.
    fn mapping(&mut self, t: &dyn TableLike, path: &str) -> idsync_core::mapping::Mapping {
        use idsync_core::mapping::{Apply, Mapping, MappingError};
        let mut out = Mapping::default();
        let Some(item) = t.get("mapping") else {
            return out;
        };
        let Some(mt) = item.as_table_like() else {
            self.err(
                &item.span(),
                &format!("{path}.mapping"),
                "expected a table: target attribute = \"expression\"",
            );
            return out;
        };
        for (attr, v) in mt.iter() {
            let key = format!("{path}.mapping.{attr}");
            let span = v.span();
            let (text, apply) = if let Some(s) = v.as_str() {
                (s.to_string(), Apply::Always)
            } else if let Some(it) = v.as_table_like() {
                self.keys(it, &key, &["expression", "apply"]);
                let Some(text) = it.get("expression").and_then(Item::as_str) else {
                    self.err(
                        &span,
                        &format!("{key}.expression"),
                        "required: the expression",
                    );
                    continue;
                };
                let apply = match self
                    .choice(it, "apply", &key, &["always", "on_create"])
                    .as_deref()
                {
                    Some("on_create") => Apply::OnCreate,
                    _ => Apply::Always,
                };
                (text.to_string(), apply)
            } else {
                self.err(
                    &span,
                    &key,
                    "expected \"expression\" or { expression = \"...\", apply = \"on_create\" }",
                );
                continue;
            };
            match Mapping::compile(&[(attr.to_string(), text, apply)]) {
                Ok(m) => out.rules.extend(m.rules),
                Err(errors) => {
                    for e in errors {
                        let message = match e {
                            MappingError::Expression { error, .. } => error.to_string(),
                            other => other.to_string(),
                        };
                        self.err(&span, &key, message);
                    }
                }
            }
        }
        out
    }

    // ------------------------------------------------------------------ helpers

    /// A top-level table that may be absent. Outer None: present but not a table.
    fn section<'d>(
        &mut self,
        root: &'d dyn TableLike,
        key: &str,
    ) -> Option<Option<&'d dyn TableLike>> {
        match root.get(key) {
            None => Some(None),
            Some(item) => match item.as_table_like() {
                Some(t) => Some(Some(t)),
                None => {
                    self.err(&item.span(), key, "expected a table");
                    None
                }
            },
        }
    }

    /// `[sources.<name>]`-style maps of named tables.
    fn named<T>(
        &mut self,
        root: &dyn TableLike,
        key: &str,
        each: fn(&mut Self, &str, &dyn TableLike, &Span) -> Option<T>,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let Some(Some(t)) = self.section(root, key) else {
            return out;
        };
        for (name, item) in t.iter() {
            let anchor = t
                .get_key_value(name)
                .and_then(|(k, _)| k.span())
                .or_else(|| item.span());
            if !valid_name(name) {
                self.err(&anchor, &format!("{key}.{name}"), format!("{name:?} is not a valid name (lowercase letters, digits, - and _, starting with a letter or digit, at most 64)"));
                continue;
            }
            let Some(tt) = item.as_table_like() else {
                self.err(&item.span(), &format!("{key}.{name}"), "expected a table");
                continue;
            };
            if let Some(v) = each(self, name, tt, &anchor) {
                out.insert(name.to_string(), v);
            }
        }
        out
    }

    fn keys(&mut self, t: &dyn TableLike, path: &str, allowed: &[&str]) {
        let mut bad = Vec::new();
        for (k, item) in t.iter() {
            if !allowed.contains(&k) {
                let span = t
                    .get_key_value(k)
                    .and_then(|(key, _)| key.span())
                    .or_else(|| item.span());
                bad.push((span, k.to_string()));
            }
        }
        for (span, k) in bad {
            let full = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            self.err(
                &span,
                &full,
                format!(
                    "unknown key {k:?} (expected one of: {})",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn value<'d>(
        &mut self,
        t: &'d dyn TableLike,
        key: &str,
        path: &str,
        expected: &str,
    ) -> Option<(&'d Value, String)> {
        let item = t.get(key)?;
        let full = format!("{path}.{key}");
        match item.as_value() {
            Some(v) => Some((v, full)),
            None => {
                self.err(&item.span(), &full, format!("expected {expected}"));
                None
            }
        }
    }

    /// A string that must say something: empty (or blank) is an error naming `what`.
    fn non_empty(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        what: &str,
    ) -> Option<String> {
        let v = self.string(t, key, path)?;
        if v.trim().is_empty() {
            let span = t.get(key).and_then(Item::span);
            self.err(
                &span,
                &format!("{path}.{key}"),
                format!("must not be empty: {what}"),
            );
            return None;
        }
        Some(v)
    }

    /// A path (relative to the configuration file) to a file that must exist now: read at
    /// start-up (certificates, CA bundles), so a missing one is a configuration error rather
    /// than a failed run.
    fn existing_file(&mut self, t: &dyn TableLike, key: &str, path: &str) -> Option<PathBuf> {
        let name = self.non_empty(t, key, path, "a file name")?;
        let file = self.base.join(name);
        let problem = match std::fs::metadata(&file) {
            Ok(m) if m.is_file() => return Some(file),
            Ok(_) => "not a file".to_string(),
            Err(e) => e.to_string(),
        };
        let span = t.get(key).and_then(Item::span);
        self.err(
            &span,
            &format!("{path}.{key}"),
            format!("cannot read {}: {problem}", file.display()),
        );
        None
    }

    fn string(&mut self, t: &dyn TableLike, key: &str, path: &str) -> Option<String> {
        let (v, full) = self.value(t, key, path, "a string")?;
        match v.as_str() {
            Some(s) => self.interpolate(s, &v.span(), &full),
            None => {
                self.err(
                    &v.span(),
                    &full,
                    format!("expected a string, found {}", v.type_name()),
                );
                None
            }
        }
    }

    /// Resolve `${env:NAME}` and `${file:PATH}` references.
    fn interpolate(&mut self, s: &str, span: &Span, key: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.err(span, key, "unterminated ${...} reference");
                return None;
            };
            let reference = &after[..end];
            let value = if let Some(name) = reference.strip_prefix("env:") {
                match std::env::var(name) {
                    Ok(v) if v.trim().is_empty() => {
                        self.err(span, key, format!("environment variable {name} is empty"));
                        return None;
                    }
                    Ok(v) => v,
                    Err(_) => {
                        self.err(span, key, format!("environment variable {name} is not set"));
                        return None;
                    }
                }
            } else if let Some(p) = reference.strip_prefix("file:") {
                let path = self.base.join(p);
                match std::fs::read_to_string(&path) {
                    Ok(v) if v.trim().is_empty() => {
                        self.err(
                            span,
                            key,
                            format!("secret file {} is empty", path.display()),
                        );
                        return None;
                    }
                    Ok(v) => v
                        .strip_suffix('\n')
                        .map(|v| v.strip_suffix('\r').unwrap_or(v))
                        .unwrap_or(&v)
                        .to_string(),
                    Err(e) => {
                        self.err(
                            span,
                            key,
                            format!("cannot read secret file {}: {e}", path.display()),
                        );
                        return None;
                    }
                }
            } else {
                self.err(
                    span,
                    key,
                    format!(
                        "unknown reference ${{{reference}}} (use ${{env:NAME}} or ${{file:PATH}})"
                    ),
                );
                return None;
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn int(&mut self, t: &dyn TableLike, key: &str, path: &str, min: i64, max: i64) -> Option<i64> {
        let (v, full) = self.value(t, key, path, "an integer")?;
        match v.as_integer() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.err(
                    &v.span(),
                    &full,
                    format!("{n} is out of range ({min} to {max})"),
                );
                None
            }
            None => {
                self.err(
                    &v.span(),
                    &full,
                    format!("expected an integer, found {}", v.type_name()),
                );
                None
            }
        }
    }

    fn float(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        min: f64,
        max: f64,
    ) -> Option<f64> {
        let (v, full) = self.value(t, key, path, "a number")?;
        let n = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        match n {
            Some(n) if n >= min && n <= max => Some(n),
            Some(n) => {
                self.err(
                    &v.span(),
                    &full,
                    format!("{n} is out of range ({min} to {max})"),
                );
                None
            }
            None => {
                self.err(
                    &v.span(),
                    &full,
                    format!("expected a number, found {}", v.type_name()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, t: &dyn TableLike, key: &str, path: &str) -> Option<bool> {
        let (v, full) = self.value(t, key, path, "true or false")?;
        let b = v.as_bool();
        if b.is_none() {
            self.err(
                &v.span(),
                &full,
                format!("expected true or false, found {}", v.type_name()),
            );
        }
        b
    }

    fn choice(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        allowed: &[&str],
    ) -> Option<String> {
        let s = self.string(t, key, path)?;
        if allowed.contains(&s.as_str()) {
            return Some(s);
        }
        let span = t.get(key).and_then(Item::span);
        self.err(
            &span,
            &format!("{path}.{key}"),
            format!("{s:?} is not one of: {}", allowed.join(", ")),
        );
        None
    }

    fn required_choice(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        allowed: &[&str],
        anchor: &Span,
    ) -> Option<String> {
        if t.get(key).is_none() {
            self.err(
                anchor,
                &format!("{path}.{key}"),
                format!("required: one of {}", allowed.join(", ")),
            );
            return None;
        }
        self.choice(t, key, path, allowed)
    }

    fn duration(&mut self, t: &dyn TableLike, key: &str, path: &str) -> Option<Duration> {
        let s = self.string(t, key, path)?;
        match parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                let span = t.get(key).and_then(Item::span);
                self.err(&span, &format!("{path}.{key}"), e);
                None
            }
        }
    }

    fn str_array(&mut self, t: &dyn TableLike, key: &str, path: &str) -> Vec<(String, Span)> {
        let Some((v, full)) = self.value(t, key, path, "an array of strings") else {
            return Vec::new();
        };
        let Some(arr) = v.as_array() else {
            self.err(
                &v.span(),
                &full,
                format!("expected an array of strings, found {}", v.type_name()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in arr.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push((s.to_string(), item.span())),
                None => self.err(
                    &item.span(),
                    &format!("{full}[{i}]"),
                    format!("expected a string, found {}", item.type_name()),
                ),
            }
        }
        out
    }
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn list<'k>(keys: impl Iterator<Item = &'k String>) -> String {
    let v: Vec<&str> = keys.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The key a syntax error is at, as far as the text tells: the table of the lines above it
/// (`[sources.hr]`) and the key on its line (`tenant = `), e.g. `sources.hr.tenant`.
fn key_at(text: &str, offset: usize) -> String {
    let upto = &text[..offset.min(text.len())];
    let line_start = upto.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = upto[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['))
        .unwrap_or_default();
    match (table.is_empty(), key.is_empty()) {
        (_, true) if line.trim().starts_with('[') => line
            .trim()
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        (true, true) => "(top level)".to_string(),
        (false, true) => table,
        (true, false) => key,
        (false, false) => format!("{table}.{key}"),
    }
}
