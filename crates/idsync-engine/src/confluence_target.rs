//! The Confluence target, built from its configuration.

use crate::EngineError;
use idsync_config::{ConfluenceDeactivation, ConfluenceTargetConfig, JiraAuth};
use idsync_connectors::targets::atlassian_dc::{Auth, ClientConfig};
use idsync_connectors::targets::confluence::{ConfluenceTarget, Deactivation};

pub(crate) fn build(
    name: &str,
    c: &ConfluenceTargetConfig,
) -> Result<ConfluenceTarget, EngineError> {
    let cfg = idsync_connectors::targets::confluence::ConfluenceTargetConfig {
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
        deactivation: match c.deactivation {
            ConfluenceDeactivation::Auto => Deactivation::Auto,
            ConfluenceDeactivation::Disable => Deactivation::Disable,
            ConfluenceDeactivation::Groups => Deactivation::Groups,
        },
        access_groups: c.access_groups.clone(),
        record_prefix: c.record_prefix.clone(),
    };
    ConfluenceTarget::new(cfg).map_err(|e| EngineError::Setup(format!("target {name}: {e}")))
}
