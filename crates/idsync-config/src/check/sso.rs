//! `[sso]`: the issuer, key rotation and lifetimes, `[sso.upstreams.<name>]` (the identity
//! providers idsync signs users in at) and `[sso.clients.<name>]` (the products), with their
//! references to sources, upstreams and flows checked once everything is read.

use super::{list, valid_name, Checker, Span};
use crate::sso::*;
use crate::{Config, FlowConfig, Secret, SourceConfig, SourceKind};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use toml_edit::{Item, TableLike};

const KEYS: &[&str] = &[
    "issuer",
    "key_rotation",
    "key_overlap",
    "saml_key_rotation",
    "saml_key_overlap",
    "code_ttl",
    "token_ttl",
    "login_timeout",
    "sign_in_rate",
    "sign_in_burst",
    "max_pending_sign_ins",
    "upstreams",
    "clients",
    "saml_clients",
];

const UPSTREAM_KEYS: &[&str] = &[
    "style",
    "authority",
    "issuer",
    "tenant_id",
    "tenant",
    "policy",
    "client_id",
    "client_secret",
    "client_auth",
    "scopes",
    "source",
    "claims",
    "clock_skew",
    "timeout",
    "ca_file",
];

const CLIENT_KEYS: &[&str] = &[
    "client_id",
    "client_secret",
    "public",
    "require_pkce",
    "redirect_uris",
    "upstream",
    "flow",
    "subject",
];

/// Why a URL cannot be used, or None: http(s), a host, no fragment, and https unless the host
/// is a loopback address (tests, a proxy on the same machine).
fn url_problem(s: &str) -> Option<String> {
    let Ok(u) = url::Url::parse(s) else {
        return Some(format!("{s:?} is not an absolute URL"));
    };
    if u.fragment().is_some() {
        return Some(format!("{s:?} has a fragment (#...)"));
    }
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match u.scheme() {
        "https" if u.host_str().is_some() => None,
        "http" if loopback => None,
        "http" => Some(format!(
            "{s:?} is http: only https, or http to a loopback address"
        )),
        _ => Some(format!("{s:?} is not an https URL")),
    }
}

impl Checker<'_> {
    fn sso_url(&mut self, t: &dyn TableLike, key: &str, path: &str) -> Option<String> {
        let s = self.string(t, key, path)?;
        if let Some(p) = url_problem(&s) {
            let span = t.get(key).and_then(Item::span);
            self.err(&span, &format!("{path}.{key}"), p);
            return None;
        }
        Some(s)
    }

    fn sso_required(&mut self, t: &dyn TableLike, key: &str, path: &str, anchor: &Span) -> bool {
        if t.get(key).is_some() {
            return true;
        }
        self.err(anchor, &format!("{path}.{key}"), "required");
        false
    }

    pub(super) fn sso(&mut self, root: &dyn TableLike) -> Option<SsoConfig> {
        let path = "sso";
        let t = self.section(root, path)??;
        self.keys(t, path, KEYS);
        let anchor = root
            .get_key_value(path)
            .and_then(|(k, _)| k.span())
            .or_else(|| root.get(path).and_then(Item::span));
        self.sso_required(t, "issuer", path, &anchor);
        let issuer = self.sso_url(t, "issuer", path).map(|s| {
            let span = t.get("issuer").and_then(Item::span);
            if s.contains('?') {
                self.err(&span, "sso.issuer", "an issuer has no query (?...)");
            }
            s.trim_end_matches('/').to_string()
        });
        let mut duration = |key: &str, default: Duration, min: Duration, max: Duration| {
            let d = self.duration(t, key, path).unwrap_or(default);
            if d < min || d > max {
                let span = t.get(key).and_then(Item::span);
                self.err(
                    &span,
                    &format!("{path}.{key}"),
                    format!(
                        "must be {}s to {}s, not {}s",
                        min.as_secs(),
                        max.as_secs(),
                        d.as_secs()
                    ),
                );
            }
            d
        };
        let day = Duration::from_secs(86_400);
        let key_rotation = duration(
            "key_rotation",
            SsoConfig::DEFAULT_KEY_ROTATION,
            day,
            Duration::from_secs(3 * 365 * 86_400),
        );
        let key_overlap = duration(
            "key_overlap",
            SsoConfig::DEFAULT_KEY_OVERLAP,
            Duration::from_secs(600),
            Duration::from_secs(30 * 86_400),
        );
        let saml_key_rotation = duration(
            "saml_key_rotation",
            SsoConfig::DEFAULT_SAML_KEY_ROTATION,
            day,
            Duration::from_secs(3 * 365 * 86_400),
        );
        let saml_key_overlap = duration(
            "saml_key_overlap",
            SsoConfig::DEFAULT_SAML_KEY_OVERLAP,
            Duration::from_secs(600),
            Duration::from_secs(180 * 86_400),
        );
        let code_ttl = duration(
            "code_ttl",
            SsoConfig::DEFAULT_CODE_TTL,
            Duration::from_secs(1),
            Duration::from_secs(600),
        );
        let token_ttl = duration(
            "token_ttl",
            SsoConfig::DEFAULT_TOKEN_TTL,
            Duration::from_secs(60),
            day,
        );
        let login_timeout = duration(
            "login_timeout",
            SsoConfig::DEFAULT_LOGIN_TIMEOUT,
            Duration::from_secs(10),
            Duration::from_secs(3600),
        );
        let sign_in_rate = self
            .float(t, "sign_in_rate", path, 0.0, 1_000_000.0)
            .unwrap_or(SsoConfig::DEFAULT_SIGN_IN_RATE);
        let sign_in_burst = self
            .int(t, "sign_in_burst", path, 1, 1_000_000)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(SsoConfig::DEFAULT_SIGN_IN_BURST);
        let max_pending_sign_ins = self
            .int(t, "max_pending_sign_ins", path, 1, 100_000_000)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(SsoConfig::DEFAULT_MAX_PENDING_SIGN_INS);
        if key_overlap < token_ttl || key_overlap >= key_rotation {
            let span = t.get("key_overlap").and_then(Item::span).or(anchor.clone());
            self.err(&span, "sso.key_overlap", format!(
                "must be at least token_ttl ({}s: tokens signed by the replaced key must still verify) and shorter than key_rotation ({}s)",
                token_ttl.as_secs(), key_rotation.as_secs()));
        }
        if saml_key_overlap.saturating_mul(2) >= saml_key_rotation {
            let span = t
                .get("saml_key_overlap")
                .and_then(Item::span)
                .or(anchor.clone());
            self.err(&span, "sso.saml_key_overlap", format!(
                "must be shorter than half of saml_key_rotation ({}s): the next key is published for the overlap before it signs, the replaced one for the overlap after",
                saml_key_rotation.as_secs()));
        }
        let mut upstreams = BTreeMap::new();
        let mut saml_upstreams = BTreeMap::new();
        for (name, u) in self.sso_named(t, "upstreams", Self::sso_any_upstream) {
            match u {
                AnyUpstream::Oidc(u) => {
                    upstreams.insert(name, u);
                }
                AnyUpstream::Saml(u) => {
                    saml_upstreams.insert(name, u);
                }
            }
        }
        let clients = self.sso_named(t, "clients", Self::sso_client);
        let saml_clients = self.sso_named(t, "saml_clients", Self::sso_saml_client);
        let mut entities: BTreeMap<&str, &str> = BTreeMap::new();
        let mut dup_entities = Vec::new();
        for (name, c) in &saml_clients {
            if let Some(other) = entities.insert(&c.entity_id, name) {
                dup_entities.push((name.clone(), other.to_string()));
            }
        }
        for (name, other) in dup_entities {
            let span = self.sso_span(root, &["sso", "saml_clients", &name, "entity_id"]);
            self.err(
                &span,
                &format!("sso.saml_clients.{name}.entity_id"),
                format!("is also the entity_id of sso.saml_clients.{other}"),
            );
        }
        let mut ids: BTreeMap<&str, &str> = BTreeMap::new();
        let mut dups = Vec::new();
        for (name, c) in &clients {
            if let Some(other) = ids.insert(&c.client_id, name) {
                dups.push((name.clone(), other.to_string()));
            }
        }
        for (name, other) in dups {
            let span = self.sso_span(root, &["sso", "clients", &name, "client_id"]);
            self.err(
                &span,
                &format!("sso.clients.{name}.client_id"),
                format!("is also the client_id of sso.clients.{other}"),
            );
        }
        Some(SsoConfig {
            issuer: issuer?,
            key_rotation,
            key_overlap,
            saml_key_rotation,
            saml_key_overlap,
            code_ttl,
            token_ttl,
            login_timeout,
            sign_in_rate,
            sign_in_burst,
            max_pending_sign_ins,
            upstreams,
            saml_upstreams,
            clients,
            saml_clients,
        })
    }

    fn sso_span(&self, root: &dyn TableLike, keys: &[&str]) -> Span {
        let mut t = root;
        let mut span = None;
        for (i, k) in keys.iter().enumerate() {
            let Some((key, item)) = t.get_key_value(k) else {
                return span;
            };
            span = key.span().or_else(|| item.span());
            if i + 1 < keys.len() {
                match item.as_table_like() {
                    Some(next) => t = next,
                    None => return span,
                }
            } else if let Some(s) = item.span() {
                span = Some(s);
            }
        }
        span
    }

    fn sso_named<T>(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        each: fn(&mut Self, &str, &dyn TableLike, &Span) -> Option<T>,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let Some(item) = t.get(key) else {
            return out;
        };
        let Some(tt) = item.as_table_like() else {
            self.err(&item.span(), &format!("sso.{key}"), "expected a table");
            return out;
        };
        for (name, item) in tt.iter() {
            let anchor = tt
                .get_key_value(name)
                .and_then(|(k, _)| k.span())
                .or_else(|| item.span());
            let path = format!("sso.{key}.{name}");
            if !valid_name(name) {
                self.err(&anchor, &path, format!("{name:?} is not a valid name (lowercase letters, digits, - and _, starting with a letter or digit, at most 64)"));
                continue;
            }
            let Some(each_t) = item.as_table_like() else {
                self.err(&item.span(), &path, "expected a table");
                continue;
            };
            if let Some(v) = each(self, name, each_t, &anchor) {
                out.insert(name.to_string(), v);
            }
        }
        out
    }

    pub(super) fn sso_upstream(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        anchor: &Span,
    ) -> Option<SsoUpstreamConfig> {
        let path = format!("sso.upstreams.{name}");
        let path = path.as_str();
        self.keys(t, path, UPSTREAM_KEYS);
        let kind = self.required_choice(
            t,
            "style",
            path,
            &["entra", "external-id", "b2c", "generic", "saml"],
            anchor,
        );
        let mut ok = kind.is_some();
        let mut authority = self.sso_url(t, "authority", path);
        let mut issuer = self.string(t, "issuer", path);
        let tenant_id = self.string(t, "tenant_id", path);
        let tenant = self.string(t, "tenant", path);
        let policy = self.string(t, "policy", path);
        let style = match kind.as_deref() {
            Some("entra") => {
                for key in ["tenant", "policy"] {
                    if t.get(key).is_some() {
                        let span = t.get(key).and_then(Item::span);
                        self.err(&span, &format!("{path}.{key}"), "is for style = \"b2c\"");
                        ok = false;
                    }
                }
                match tenant_id {
                    Some(tid) if !tid.trim().is_empty() => {
                        if authority.is_none() && t.get("authority").is_none() {
                            authority =
                                Some(format!("https://login.microsoftonline.com/{tid}/v2.0"));
                        }
                        Some(UpstreamStyle::Entra { tenant_id: tid })
                    }
                    _ => {
                        self.err(
                            anchor,
                            &format!("{path}.tenant_id"),
                            "required for style = \"entra\": the directory (tenant) id, a GUID",
                        );
                        None
                    }
                }
            }
            // Entra External ID (external tenants, B2C's successor): Entra's v2 tokens (`tid`,
            // `oid`) from the tenant's ciamlogin.com host.
            Some("external-id") => {
                if t.get("policy").is_some() {
                    let span = t.get("policy").and_then(Item::span);
                    self.err(
                        &span,
                        &format!("{path}.policy"),
                        "is for style = \"b2c\" (External ID has no policy in its authority)",
                    );
                    ok = false;
                }
                match (&tenant, &tenant_id) {
                    (Some(tn), Some(tid)) if !tn.trim().is_empty() && !tid.trim().is_empty() => {
                        if t.get("authority").is_none() {
                            authority = Some(format!("https://{tn}.ciamlogin.com/{tid}/v2.0"));
                        }
                        issuer = issuer
                            .or_else(|| Some(format!("https://{tid}.ciamlogin.com/{tid}/v2.0")));
                        Some(UpstreamStyle::Entra {
                            tenant_id: tid.clone(),
                        })
                    }
                    _ => {
                        self.err(anchor, &format!("{path}.tenant"), "style = \"external-id\" needs tenant (the subdomain before .ciamlogin.com) and tenant_id (the tenant's GUID)");
                        None
                    }
                }
            }
            Some("b2c") => match policy {
                Some(p) if !p.trim().is_empty() => {
                    if t.get("authority").is_none() {
                        match (&tenant, &tenant_id) {
                            (Some(tn), Some(tid)) => {
                                authority = Some(format!(
                                    "https://{tn}.b2clogin.com/{tn}.onmicrosoft.com/{p}/v2.0/"
                                ));
                                issuer = issuer.or_else(|| {
                                    Some(format!("https://{tn}.b2clogin.com/{tid}/v2.0/"))
                                });
                            }
                            _ => {
                                self.err(anchor, &format!("{path}.authority"), "style = \"b2c\" needs tenant (the name before .onmicrosoft.com) and tenant_id, or authority and issuer");
                                ok = false;
                            }
                        }
                    }
                    Some(UpstreamStyle::B2c { policy: p })
                }
                _ => {
                    self.err(
                        anchor,
                        &format!("{path}.policy"),
                        "required for style = \"b2c\": the user flow, such as B2C_1_signin",
                    );
                    None
                }
            },
            Some(_) => {
                if t.get("authority").is_none() {
                    self.err(anchor, &format!("{path}.authority"), "required for style = \"generic\": the provider's URL (discovery is read under it)");
                    ok = false;
                }
                Some(UpstreamStyle::Generic)
            }
            None => None,
        };
        if t.get("authority").is_some() && authority.is_none() {
            ok = false;
        }
        let issuer = issuer.or_else(|| authority.clone());
        self.sso_required(t, "client_id", path, anchor);
        let client_id = self.string(t, "client_id", path);
        let client_secret = if self.sso_required(t, "client_secret", path, anchor) {
            self.string(t, "client_secret", path).map(Secret::new)
        } else {
            None
        };
        let client_auth = self
            .choice(t, "client_auth", path, &["post", "basic"])
            .unwrap_or_else(|| "post".into());
        let source = if self.sso_required(t, "source", path, anchor) {
            self.string(t, "source", path)
        } else {
            None
        };
        let scopes: Vec<String> = match t.get("scopes") {
            Some(_) => self
                .str_array(t, "scopes", path)
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            None if matches!(style, Some(UpstreamStyle::B2c { .. })) => Vec::new(),
            None => vec!["profile".into(), "email".into()],
        };
        let defaults = style.as_ref().map(default_claims).unwrap_or_default();
        let claims = self.sso_claims(t, path, defaults);
        let clock_skew = self
            .duration(t, "clock_skew", path)
            .unwrap_or(Duration::from_secs(120));
        if clock_skew > Duration::from_secs(600) {
            let span = t.get("clock_skew").and_then(Item::span);
            self.err(&span, &format!("{path}.clock_skew"), "at most 10m");
        }
        let timeout = self
            .duration(t, "timeout", path)
            .unwrap_or(Duration::from_secs(15));
        let ca_file = if t.get("ca_file").is_some() {
            let f = self.existing_file(t, "ca_file", path);
            ok &= f.is_some();
            f
        } else {
            None
        };
        if !ok {
            return None;
        }
        Some(SsoUpstreamConfig {
            name: name.to_string(),
            style: style?,
            authority: authority?,
            issuer: issuer?,
            client_id: client_id?,
            client_secret: client_secret?,
            client_auth_basic: client_auth == "basic",
            scopes,
            source: source?,
            claims,
            clock_skew,
            timeout,
            ca_file,
        })
    }

    /// `claims = { attribute = "claim" }` over `defaults` (`""` maps nothing).
    pub(super) fn sso_claims(
        &mut self,
        t: &dyn TableLike,
        path: &str,
        defaults: BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut claims = defaults;
        if let Some(item) = t.get("claims") {
            match item.as_table_like() {
                None => self.err(
                    &item.span(),
                    &format!("{path}.claims"),
                    "expected a table of directory attribute = \"claim\"",
                ),
                Some(ct) => {
                    for (attr, v) in ct.iter() {
                        let key = format!("{path}.claims.{attr}");
                        match v.as_str() {
                            Some("") => {
                                claims.remove(attr);
                            }
                            Some(c) => {
                                claims.insert(attr.to_string(), c.to_string());
                            }
                            None => self.err(
                                &v.span(),
                                &key,
                                "expected the claim's name (a string; \"\" maps nothing)",
                            ),
                        }
                    }
                }
            }
        }
        claims
    }

    fn sso_client(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        anchor: &Span,
    ) -> Option<SsoClientConfig> {
        let path = format!("sso.clients.{name}");
        let path = path.as_str();
        self.keys(t, path, CLIENT_KEYS);
        let client_id = self.string(t, "client_id", path);
        if t.get("client_id").is_none() {
            self.err(anchor, &format!("{path}.client_id"), "required");
        }
        let public = self.boolean(t, "public", path).unwrap_or(false);
        let client_secret = self.string(t, "client_secret", path).map(Secret::new);
        match (public, &client_secret) {
            (true, Some(_)) => {
                let span = t.get("client_secret").and_then(Item::span);
                self.err(&span, &format!("{path}.client_secret"), "a public client has no secret (leave it out, or public = false)");
            }
            (false, None) if t.get("client_secret").is_none() => self.err(anchor, &format!("{path}.client_secret"), "required: a ${env:NAME} or ${file:PATH} reference (or public = true for a client that cannot keep a secret: it must use PKCE)"),
            _ => {}
        }
        if let Some(s) = &client_secret {
            if s.expose().trim().len() < 16 {
                let span = t.get("client_secret").and_then(Item::span);
                self.err(
                    &span,
                    &format!("{path}.client_secret"),
                    "is shorter than 16 characters: make one with `openssl rand -base64 32`",
                );
            }
        }
        let require_pkce = self.boolean(t, "require_pkce", path).unwrap_or(false) || public;
        let mut redirect_uris = Vec::new();
        if t.get("redirect_uris").is_none() {
            self.err(
                anchor,
                &format!("{path}.redirect_uris"),
                "required: the product's redirect URIs, each compared exactly",
            );
        }
        for (i, (u, span)) in self
            .str_array(t, "redirect_uris", path)
            .into_iter()
            .enumerate()
        {
            match url_problem(&u) {
                Some(p) => self.err(&span, &format!("{path}.redirect_uris[{i}]"), p),
                None => redirect_uris.push(u),
            }
        }
        let upstream = self.string(t, "upstream", path);
        if t.get("upstream").is_none() {
            self.err(
                anchor,
                &format!("{path}.upstream"),
                "required: the [sso.upstreams.<name>] that signs this product's users in",
            );
        }
        let flow = self.string(t, "flow", path);
        if t.get("flow").is_none() {
            self.err(
                anchor,
                &format!("{path}.flow"),
                "required: the flow whose group rules give the group names this product receives",
            );
        }
        let subject = match self
            .choice(t, "subject", path, &["username", "id"])
            .as_deref()
        {
            Some("id") => ClientSubject::Id,
            _ => ClientSubject::Username,
        };
        if redirect_uris.is_empty() {
            return None;
        }
        Some(SsoClientConfig {
            name: name.to_string(),
            client_id: client_id?,
            client_secret: if public { None } else { Some(client_secret?) },
            require_pkce,
            redirect_uris,
            upstream: upstream?,
            flow: flow?,
            subject,
        })
    }

    /// What `[sso]` names exists: sources, upstreams, flows (of the upstream's source), and the
    /// store's secret key that seals the signing keys.
    pub(super) fn sso_refs(
        &mut self,
        root: &dyn TableLike,
        sso: &SsoConfig,
        store_has_key: bool,
        sources: &BTreeMap<String, SourceConfig>,
        flows: &BTreeMap<String, FlowConfig>,
    ) {
        let declared = |section: &str| -> BTreeSet<String> {
            root.get(section)
                .and_then(Item::as_table_like)
                .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
                .unwrap_or_default()
        };
        let (declared_sources, declared_flows) = (declared("sources"), declared("flows"));
        if !store_has_key {
            let span = self.sso_span(root, &["sso"]);
            self.err(&span, "store.secret_key", "[sso] needs [store] secret_key: idsync's signing keys are sealed with it (make one with `openssl rand -base64 32` and give it as ${env:NAME} or ${file:PATH})");
        }
        let upstream_sources = sso
            .upstreams
            .iter()
            .map(|(n, u)| (n, &u.source))
            .chain(sso.saml_upstreams.iter().map(|(n, u)| (n, &u.source)));
        for (name, source) in upstream_sources {
            if !declared_sources.contains(source) {
                let span = self.sso_span(root, &["sso", "upstreams", name, "source"]);
                self.err(
                    &span,
                    &format!("sso.upstreams.{name}.source"),
                    format!(
                        "no source named {:?} (declared: {})",
                        source,
                        list(declared_sources.iter())
                    ),
                );
            } else if sources
                .get(source)
                .is_some_and(|s| matches!(s.kind, SourceKind::File(_)))
            {
                let span = self.sso_span(root, &["sso", "upstreams", name, "source"]);
                self.err(
                    &span,
                    &format!("sso.upstreams.{name}.source"),
                    format!(
                        "source {:?} is a file source, which takes no logins (its file is the whole truth at each read): sign users in to a login, scim or msgraph source",
                        source
                    ),
                );
            }
        }
        let products = sso
            .clients
            .iter()
            .map(|(n, c)| ("clients", n, &c.upstream, &c.flow))
            .chain(
                sso.saml_clients
                    .iter()
                    .map(|(n, c)| ("saml_clients", n, &c.upstream, &c.flow)),
            );
        for (section, name, upstream, flow) in products {
            let Some(source) = sso.upstream_source(upstream) else {
                let span = self.sso_span(root, &["sso", section, name, "upstream"]);
                let names: Vec<String> = self.sso_declared(root, "upstreams").into_iter().collect();
                if !names.contains(upstream) {
                    self.err(
                        &span,
                        &format!("sso.{section}.{name}.upstream"),
                        format!(
                            "no upstream named {:?} (declared: {})",
                            upstream,
                            list(names.iter())
                        ),
                    );
                }
                continue;
            };
            let span = self.sso_span(root, &["sso", section, name, "flow"]);
            match flows.get(flow) {
                Some(f) if f.source != source => self.err(
                    &span,
                    &format!("sso.{section}.{name}.flow"),
                    format!(
                        "flow {:?} reads source {:?}, but upstream {:?} signs users of source {:?} in",
                        flow, f.source, upstream, source
                    ),
                ),
                Some(_) => {}
                None if declared_flows.contains(flow) => {}
                None => self.err(
                    &span,
                    &format!("sso.{section}.{name}.flow"),
                    format!(
                        "no flow named {:?} (declared: {})",
                        flow,
                        list(declared_flows.iter())
                    ),
                ),
            }
        }
    }

    fn sso_declared(&self, root: &dyn TableLike, key: &str) -> BTreeSet<String> {
        root.get("sso")
            .and_then(Item::as_table_like)
            .and_then(|s| s.get(key))
            .and_then(Item::as_table_like)
            .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default()
    }
}

impl Config {
    /// The `[sso]` client registered with `client_id`.
    pub fn sso_client(&self, client_id: &str) -> Option<&SsoClientConfig> {
        self.sso
            .as_ref()?
            .clients
            .values()
            .find(|c| c.client_id == client_id)
    }
}

/// An upstream of either protocol, as read.
pub(super) enum AnyUpstream {
    Oidc(SsoUpstreamConfig),
    Saml(SsoSamlUpstreamConfig),
}
