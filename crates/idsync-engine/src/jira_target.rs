//! The Jira target, built from its configuration.

use crate::EngineError;
use idsync_config::{JiraAuth, JiraDeactivation, JiraTargetConfig};
use idsync_connectors::targets::atlassian_dc::{Auth, ClientConfig};
use idsync_connectors::targets::jira::{Deactivation, JiraTarget};

pub(crate) fn build(name: &str, c: &JiraTargetConfig) -> Result<JiraTarget, EngineError> {
    let cfg = idsync_connectors::targets::jira::JiraTargetConfig {
        client: ClientConfig {
            base_url: c.url.clone(),
            auth: match &c.auth {
                JiraAuth::Token(t) => Auth::Token(t.expose().to_string()),
                JiraAuth::Basic { user, password } => Auth::Basic {
                    user: user.clone(),
                    password: password.expose().to_string(),
                },
            },
            ca_file: c.ca_file.clone(),
            timeout: c.timeout,
            concurrency: c.concurrency,
        },
        default_groups: c.default_groups.clone(),
        properties: c.properties,
        property_key: c.property_key.clone(),
        deactivation: match c.deactivation {
            JiraDeactivation::Auto => Deactivation::Auto,
            JiraDeactivation::Active => Deactivation::Active,
            JiraDeactivation::Groups => Deactivation::Groups,
        },
        access_groups: c.access_groups.clone(),
        lead_fallback: c.lead_fallback.clone(),
    };
    JiraTarget::new(cfg).map_err(|e| EngineError::Setup(format!("target {name}: {e}")))
}
