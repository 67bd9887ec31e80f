//! Sources: `[sources.x]` of each type (file, SCIM push, Microsoft Graph).

use super::*;

impl Checker<'_> {
    pub(super) fn source(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        anchor: &Span,
    ) -> Option<SourceConfig> {
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

    pub(super) fn msgraph(
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
}
