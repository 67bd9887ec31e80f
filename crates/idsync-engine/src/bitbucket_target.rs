//! The Bitbucket target, built from its configuration.

use crate::EngineError;
use idsync_config::{BitbucketTargetConfig, JiraAuth};
use idsync_connectors::targets::atlassian_dc::{Auth, ClientConfig};
use idsync_connectors::targets::bitbucket::BitbucketTarget;

pub(crate) fn build(name: &str, c: &BitbucketTargetConfig) -> Result<BitbucketTarget, EngineError> {
    let cfg = idsync_connectors::targets::bitbucket::BitbucketTargetConfig {
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
        add_to_default_group: c.add_to_default_group,
        default_groups: c.default_groups.clone(),
        access_groups: c.access_groups.clone(),
        record_prefix: c.record_prefix.clone(),
    };
    BitbucketTarget::new(cfg).map_err(|e| EngineError::Setup(format!("target {name}: {e}")))
}
