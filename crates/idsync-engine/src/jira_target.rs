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
        default_groups_on_create: !c.default_groups_all,
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

/// A flow's group rules with its Jira target's default groups for every user
/// (`default_groups_for = "all"`): planned like the flow's own `default_groups`, so every
/// provisioned user is in them and a reconcile puts back a membership removed by hand.
pub(crate) fn flow_groups(
    mut rules: idsync_core::groups::GroupRules,
    target: Option<&idsync_config::TargetConfig>,
) -> idsync_core::groups::GroupRules {
    if let Some(idsync_config::TargetKind::Jira(c)) = target.map(|t| &t.kind) {
        if c.default_groups_all {
            for g in &c.default_groups {
                if !rules.default_all.iter().any(|d| d.eq_ignore_ascii_case(g)) {
                    rules.default_all.push(g.clone());
                }
            }
        }
    }
    rules
}
