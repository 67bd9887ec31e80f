//! `idsync token`: bearer tokens of the SCIM push endpoint.

use crate::history::when;
use crate::{TokenCommand, EXIT_CONFIG};
use idsync_config::Config;
use idsync_engine::Runtime;

pub async fn token(rt: &Runtime, config: &Config, command: TokenCommand) -> anyhow::Result<u8> {
    let now = rt.clock.now_ms();
    match command {
        TokenCommand::Create { directory, name } => {
            let pushed = config.sources.values().any(|s| {
                s.directory == directory && matches!(s.kind, idsync_config::SourceKind::Scim(_))
            });
            if !pushed {
                eprintln!(
                    "warning: no source of type \"scim\" fills directory {directory:?} in {}; pushes will land in the directory but no flow reads it",
                    config.file.display()
                );
            }
            let (info, secret) = rt.store.create_token(&directory, &name, now).await?;
            out!("token {} for directory {directory} ({name}):", info.id);
            out!("{secret}");
            out!(
                "SCIM base URL: http://{}/scim/v2/{directory}  (this token is shown once; only its hash is kept)",
                config.server.listen
            );
            Ok(0)
        }
        TokenCommand::List { directory, json } => {
            let tokens = rt.store.list_tokens(directory.as_deref()).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&tokens)?);
                return Ok(0);
            }
            out!(
                "{:<36}  {:<16}  {:<16}  {:<20}  {:<20}  REVOKED",
                "ID",
                "DIRECTORY",
                "NAME",
                "CREATED",
                "LAST USED"
            );
            for t in tokens {
                out!(
                    "{:<36}  {:<16}  {:<16}  {:<20}  {:<20}  {}",
                    t.id,
                    t.directory,
                    t.name,
                    when(Some(t.created_ms)),
                    when(t.last_used_ms),
                    when(t.revoked_ms)
                );
            }
            Ok(0)
        }
        TokenCommand::Revoke { id } => {
            if rt.store.revoke_token(&id, now).await? {
                out!("token {id} revoked");
                Ok(0)
            } else {
                eprintln!("error: no live token with id {id}");
                Ok(EXIT_CONFIG)
            }
        }
    }
}
