//! `idsync crowd app`: the applications (Jira, Confluence, ...) that read a crowd target.

use crate::history::when;
use crate::{CrowdAppCommand, EXIT_CONFIG};
use idsync_config::{Config, TargetKind};
use idsync_engine::Runtime;
use idsync_server::crowd::AllowList;

pub async fn app(rt: &Runtime, config: &Config, command: CrowdAppCommand) -> anyhow::Result<u8> {
    let now = rt.clock.now_ms();
    match command {
        CrowdAppCommand::Create {
            target,
            name,
            allow,
        } => {
            if !is_crowd_target(config, &target) {
                return Ok(EXIT_CONFIG);
            }
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                eprintln!("error: --name must be a non-empty application name");
                return Ok(EXIT_CONFIG);
            }
            if let Err(e) = AllowList::parse(&allow) {
                eprintln!("error: --allow {e}");
                return Ok(EXIT_CONFIG);
            }
            let (app, password) = match rt.store.create_crowd_app(&target, &name, &allow, now).await
            {
                Ok(created) => created,
                Err(idsync_store::StoreError::Conflict(why)) => {
                    eprintln!("error: {why}");
                    return Ok(EXIT_CONFIG);
                }
                Err(e) => return Err(e.into()),
            };
            out!(
                "application {} of crowd target {target} ({}):",
                app.name,
                app.id
            );
            out!("{password}");
            out!(
                "Crowd server URL: http://{}/crowd/{target}  (application name {:?}; the password is shown once, only its argon2 hash is kept)",
                config.server.listen, app.name
            );
            if allow.is_empty() {
                out!("it may call from any address (--allow limits it)");
            } else {
                out!("it may call from: {}", allow.join(", "));
            }
            Ok(0)
        }
        CrowdAppCommand::List { target, json } => {
            let apps = rt.store.list_crowd_apps(target.as_deref()).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&apps)?);
                return Ok(0);
            }
            out!(
                "{:<16}  {:<16}  {:<24}  {:<20}  {:<20}  REVOKED",
                "TARGET",
                "NAME",
                "ALLOWED FROM",
                "CREATED",
                "LAST USED"
            );
            for a in apps {
                let allow = if a.allow.is_empty() {
                    "any".to_string()
                } else {
                    a.allow.join(",")
                };
                out!(
                    "{:<16}  {:<16}  {:<24}  {:<20}  {:<20}  {}",
                    a.target,
                    a.name,
                    allow,
                    when(Some(a.created_ms)),
                    when(a.last_used_ms),
                    when(a.revoked_ms)
                );
            }
            Ok(0)
        }
        CrowdAppCommand::Revoke { target, name } => {
            match rt.store.revoke_crowd_app(&target, &name, now).await? {
                Some(app) => {
                    out!(
                        "application {name} of crowd target {target} revoked ({})",
                        app.id
                    );
                    Ok(0)
                }
                None => {
                    eprintln!(
                        "error: crowd target {target} has no live application named {name:?}"
                    );
                    Ok(EXIT_CONFIG)
                }
            }
        }
    }
}

/// Whether `target` is a crowd target of the configuration (said on stderr when not).
fn is_crowd_target(config: &Config, target: &str) -> bool {
    match config.targets.get(target).map(|t| &t.kind) {
        Some(TargetKind::Crowd(_)) => true,
        Some(_) => {
            eprintln!(
                "error: target {target} in {} is not of type \"crowd\": applications read crowd targets only",
                config.file.display()
            );
            false
        }
        None => {
            let crowd: Vec<&str> = config
                .targets
                .iter()
                .filter(|(_, t)| matches!(t.kind, TargetKind::Crowd(_)))
                .map(|(n, _)| n.as_str())
                .collect();
            eprintln!(
                "error: no target named {target:?} in {} (crowd targets: {})",
                config.file.display(),
                if crowd.is_empty() {
                    "none".to_string()
                } else {
                    crowd.join(", ")
                }
            );
            false
        }
    }
}
