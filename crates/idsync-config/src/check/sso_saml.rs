//! `[sso.upstreams.<name>] style = "saml"`: a SAML 2.0 identity provider (Entra's enterprise
//! application, say) idsync signs users in at as a service provider.

use super::sso::AnyUpstream;
use super::{Checker, Span};
use crate::sso::*;
use std::time::Duration;
use toml_edit::{Item, TableLike};

const SAML_KEYS: &[&str] = &[
    "style",
    "metadata",
    "entity_id",
    "signed",
    "source",
    "claims",
    "clock_skew",
];

impl Checker<'_> {
    /// An upstream of either protocol, by its `style`.
    pub(super) fn sso_any_upstream(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        anchor: &Span,
    ) -> Option<AnyUpstream> {
        if t.get("style").and_then(Item::as_str) == Some("saml") {
            self.sso_saml_upstream(name, t, anchor)
                .map(AnyUpstream::Saml)
        } else {
            self.sso_upstream(name, t, anchor).map(AnyUpstream::Oidc)
        }
    }

    fn sso_saml_upstream(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        anchor: &Span,
    ) -> Option<SsoSamlUpstreamConfig> {
        let path = format!("sso.upstreams.{name}");
        let path = path.as_str();
        self.keys(t, path, SAML_KEYS);
        let metadata_file = self.string(t, "metadata", path).map(|p| self.base.join(p));
        if t.get("metadata").is_none() {
            self.err(
                anchor,
                &format!("{path}.metadata"),
                "required for style = \"saml\": the identity provider's metadata file (Entra: the app's Federation Metadata XML)",
            );
        }
        let metadata = match &metadata_file {
            Some(file) => match std::fs::read_to_string(file) {
                Ok(text) if text.contains("EntityDescriptor") => Some(text),
                Ok(_) => {
                    let span = t.get("metadata").and_then(Item::span);
                    self.err(
                        &span,
                        &format!("{path}.metadata"),
                        format!(
                            "{} holds no SAML metadata (no EntityDescriptor)",
                            file.display()
                        ),
                    );
                    None
                }
                Err(e) => {
                    let span = t.get("metadata").and_then(Item::span);
                    self.err(
                        &span,
                        &format!("{path}.metadata"),
                        format!("cannot read {}: {e}", file.display()),
                    );
                    None
                }
            },
            None => None,
        };
        let entity_id = self.string(t, "entity_id", path);
        if entity_id.as_deref().is_some_and(|e| e.trim().is_empty()) {
            let span = t.get("entity_id").and_then(Item::span);
            self.err(&span, &format!("{path}.entity_id"), "must not be empty");
        }
        let signed = self
            .choice(t, "signed", path, &["assertion", "response", "both"])
            .unwrap_or_else(|| "assertion".into());
        if t.get("source").is_none() {
            self.err(anchor, &format!("{path}.source"), "required");
        }
        let source = self.string(t, "source", path);
        let claims = self.sso_claims(t, path, default_saml_claims());
        let clock_skew = self
            .duration(t, "clock_skew", path)
            .unwrap_or(Duration::from_secs(120));
        if clock_skew > Duration::from_secs(300) {
            let span = t.get("clock_skew").and_then(Item::span);
            self.err(&span, &format!("{path}.clock_skew"), "at most 5m for SAML");
        }
        Some(SsoSamlUpstreamConfig {
            name: name.to_string(),
            metadata_file: metadata_file?,
            metadata: metadata?,
            entity_id,
            require_response_signature: signed != "assertion",
            require_assertion_signature: signed != "response",
            source: source?,
            claims,
            clock_skew,
        })
    }
}

const SAML_CLIENT_KEYS: &[&str] = &["entity_id", "acs_url", "upstream", "flow"];

impl Checker<'_> {
    pub(super) fn sso_saml_client(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        anchor: &Span,
    ) -> Option<SsoSamlClientConfig> {
        let path = format!("sso.saml_clients.{name}");
        let path = path.as_str();
        self.keys(t, path, SAML_CLIENT_KEYS);
        for key in SAML_CLIENT_KEYS {
            if t.get(key).is_none() {
                self.err(anchor, &format!("{path}.{key}"), "required");
            }
        }
        let entity_id = self.string(t, "entity_id", path);
        let acs_url = self.string(t, "acs_url", path);
        if let Some(url) = &acs_url {
            let span = t.get("acs_url").and_then(Item::span);
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| url.starts_with(p));
            if !(url.starts_with("https://") || loopback) {
                self.err(
                    &span,
                    &format!("{path}.acs_url"),
                    format!("{url:?}: only https, or http to a loopback address"),
                );
            } else if url.contains('#') {
                self.err(
                    &span,
                    &format!("{path}.acs_url"),
                    format!("{url:?} has a fragment (#...)"),
                );
            }
        }
        let upstream = self.string(t, "upstream", path);
        let flow = self.string(t, "flow", path);
        Some(SsoSamlClientConfig {
            name: name.to_string(),
            entity_id: entity_id?,
            acs_url: acs_url?,
            upstream: upstream?,
            flow: flow?,
        })
    }
}
