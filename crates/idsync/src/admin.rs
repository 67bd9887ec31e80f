//! Admin commands of the command line: the audit log (`idsync audit`), sealed secrets
//! (`idsync secrets`), and the recording of every admin action the command line does (who:
//! `cli:<OS user>`; when: the runtime's clock; what: action, object, outcome).

use crate::{
    Command, CrowdAppCommand, CrowdCommand, TokenCommand, EXIT_CONFIG, EXIT_HELD, EXIT_OPS_FAILED,
};
use anyhow::Context;
use clap::Subcommand;
use idsync_config::Config;
use idsync_core::Clock;
use idsync_engine::{EngineError, Runtime};
use idsync_store::{AuditOutcome, Keyring, NewAuditEntry, SealKey, Store};
use std::sync::Arc;

#[derive(Subcommand)]
pub(crate) enum SecretsCommand {
    /// The secrets sealed in the store: name, the id of the key that sealed each, when (never
    /// a value).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Seal every secret again under [store] secret_key; the keys in previous_secret_keys
    /// open what they sealed. Afterwards the previous keys can be removed.
    Rotate,
}

/// Who runs this command: `cli:<OS user>` (from `USER`, `LOGNAME` or `USERNAME`), or the
/// numeric user id when none of them is set.
fn cli_actor() -> String {
    let name = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()));
    match name {
        Some(n) => format!("cli:{n}"),
        None => format!("cli:uid {}", uid().unwrap_or_else(|| "unknown".into())),
    }
}

#[cfg(unix)]
fn uid() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .ok()
        .map(|m| m.uid().to_string())
}

#[cfg(not(unix))]
fn uid() -> Option<String> {
    None
}

/// The admin action a command does, if it does one: (action, object).
fn action_of(command: &Command) -> Option<(&'static str, String)> {
    Some(match command {
        Command::Sync { flow, .. } => ("flow.sync", flow.clone()),
        Command::Provision { flow, user } => ("flow.provision", format!("{flow} user {user}")),
        Command::Login {
            source, subject, ..
        } => ("user.login", format!("{source} subject {subject}")),
        Command::Approve { run } => ("run.approve", run.clone()),
        Command::Reject { run } => ("run.reject", run.clone()),
        Command::Quarantine { reset: Some(flow) } => ("flow.quarantine_reset", flow.clone()),
        Command::Token {
            command: TokenCommand::Create { directory, .. },
        } => ("token.create", directory.clone()),
        Command::Token {
            command: TokenCommand::Revoke { id },
        } => ("token.revoke", id.clone()),
        Command::Crowd {
            command:
                CrowdCommand::App {
                    command: CrowdAppCommand::Create { target, name, .. },
                },
        } => ("crowd_app.create", format!("{target} {name}")),
        Command::Crowd {
            command:
                CrowdCommand::App {
                    command: CrowdAppCommand::Revoke { target, name },
                },
        } => ("crowd_app.revoke", format!("{target} {name}")),
        Command::Secrets {
            command: SecretsCommand::Rotate,
        } => ("secrets.rotate", "store".to_string()),
        _ => return None,
    })
}

/// An admin action of this command, recorded before it starts and completed when it ends.
pub(crate) struct Audit {
    store: Store,
    clock: Arc<dyn Clock>,
    id: i64,
    at_ms: i64,
    action: &'static str,
    object: String,
    /// How it was asked for (a sync's mode), said in the detail.
    how: Option<&'static str>,
}

impl Audit {
    /// Record the start of the command's admin action (none for commands that only look).
    /// A store that cannot record it stops the action: nothing is done unaudited.
    pub(crate) async fn begin(rt: &Runtime, command: &Command) -> anyhow::Result<Option<Audit>> {
        let Some((action, object)) = action_of(command) else {
            return Ok(None);
        };
        let how = match command {
            Command::Sync { dry_run: true, .. } => Some("dry run"),
            Command::Sync { full: true, .. } => Some("full reconcile"),
            _ => None,
        };
        let at_ms = rt.clock.now_ms();
        let id = rt
            .store
            .audit_begin(&NewAuditEntry {
                at_ms,
                actor: cli_actor(),
                via: "cli".into(),
                action: action.into(),
                object: object.clone(),
            })
            .await
            .context("cannot record the action in the audit log")?;
        Ok(Some(Audit {
            store: rt.store.clone(),
            clock: Arc::clone(&rt.clock),
            id,
            at_ms,
            action,
            object,
            how,
        }))
    }

    /// Record how the action ended: done (whatever its run's status, which the detail
    /// names), refused (nothing to act on), or failed.
    pub(crate) async fn finish(self, result: &anyhow::Result<u8>) {
        let (outcome, mut detail) = match result {
            Ok(0 | EXIT_OPS_FAILED | EXIT_HELD) => (AuditOutcome::Ok, self.what_it_did().await),
            Ok(EXIT_CONFIG) => (
                AuditOutcome::Refused,
                Some(
                    match self.action {
                        "token.revoke" => "no live token with this id",
                        "crowd_app.revoke" => "no live application of this name",
                        "crowd_app.create" => "not a crowd target, a live name, or a bad --allow",
                        "secrets.rotate" => "no [store] secret_key is configured",
                        _ => "exit code 2",
                    }
                    .to_string(),
                ),
            ),
            Ok(code) => (AuditOutcome::Failed, Some(format!("exit code {code}"))),
            Err(e) => {
                let refused = matches!(
                    e.downcast_ref::<EngineError>(),
                    Some(
                        EngineError::NotHeld { .. }
                            | EngineError::UnknownFlow(_)
                            | EngineError::UnknownRun(_)
                            | EngineError::UnknownSource(_)
                            | EngineError::UnknownUser { .. }
                            | EngineError::Busy { .. }
                            | EngineError::NothingToReconcile { .. }
                    )
                );
                let outcome = if refused {
                    AuditOutcome::Refused
                } else {
                    AuditOutcome::Failed
                };
                (outcome, Some(format!("{e:#}")))
            }
        };
        if let Some(how) = self.how {
            detail = Some(match detail {
                Some(d) => format!("{how}; {d}"),
                None => how.to_string(),
            });
        }
        let ended = self.clock.now_ms();
        if let Err(e) = self
            .store
            .audit_end(self.id, outcome, detail.as_deref(), ended)
            .await
        {
            tracing::warn!(error = %e, action = self.action, "cannot record how an action ended in the audit log");
        }
    }

    /// The run the action started, or the token it made.
    async fn what_it_did(&self) -> Option<String> {
        let flow = match self.action {
            "flow.sync" => Some(self.object.clone()),
            "flow.provision" => self.object.split(' ').next().map(str::to_string),
            "run.approve" => self
                .store
                .get_run(&self.object)
                .await
                .ok()
                .flatten()
                .map(|r| r.flow),
            "token.create" => {
                let tokens = self.store.list_tokens(Some(&self.object)).await.ok()?;
                return tokens
                    .into_iter()
                    .filter(|t| t.created_ms >= self.at_ms)
                    .max_by_key(|t| t.created_ms)
                    .map(|t| format!("token {} ({})", t.id, t.name));
            }
            _ => None,
        }?;
        // Runs of one flow do not overlap, so the run of the flow begun since the action
        // started is the one it started.
        let runs = self.store.list_runs(Some(&flow), 5).await.ok()?;
        runs.into_iter()
            .find(|r| r.started_ms >= self.at_ms)
            .map(|r| format!("run {}: {}", r.id, r.status.as_str()))
    }
}

/// `idsync audit`: the audit log, newest first.
pub(crate) async fn audit(rt: &Runtime, limit: i64, json: bool) -> anyhow::Result<u8> {
    let entries = rt.store.list_audit(limit.clamp(1, 100_000)).await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(0);
    }
    out!(
        "{:<20}  {:<20}  {:<3}  {:<21}  {:<36}  {:<8}  DETAIL",
        "WHEN",
        "WHO",
        "VIA",
        "ACTION",
        "OBJECT",
        "OUTCOME"
    );
    for e in entries {
        out!(
            "{:<20}  {:<20}  {:<3}  {:<21}  {:<36}  {:<8}  {}",
            crate::history::when(Some(e.at_ms)),
            e.actor,
            e.via,
            e.action,
            e.object,
            e.outcome.as_str(),
            e.detail.unwrap_or_default()
        );
    }
    Ok(0)
}

/// The keyring of the configuration: `[store] secret_key` seals, `previous_secret_keys` open.
fn keyring(config: &Config) -> Option<Keyring> {
    let current = config.store.secret_key.as_ref()?;
    Some(Keyring::new(
        SealKey::new(current.expose()),
        config
            .store
            .previous_secret_keys
            .iter()
            .map(|k| SealKey::new(k.expose()))
            .collect(),
    ))
}

/// `idsync secrets list | rotate`.
pub(crate) async fn secrets(
    rt: &Runtime,
    config: &Config,
    command: SecretsCommand,
) -> anyhow::Result<u8> {
    match command {
        SecretsCommand::List { json } => {
            let list = rt.store.list_secrets().await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(0);
            }
            let current = config
                .store
                .secret_key
                .as_ref()
                .map(|k| SealKey::new(k.expose()).id().to_string());
            out!(
                "current key: {}",
                current
                    .as_deref()
                    .unwrap_or("none ([store] secret_key is not set)")
            );
            out!("{:<32}  {:<12}  SEALED", "NAME", "KEY");
            for s in list {
                out!(
                    "{:<32}  {:<12}  {}",
                    s.name,
                    s.key_id,
                    crate::history::when(Some(s.sealed_ms))
                );
            }
            Ok(0)
        }
        SecretsCommand::Rotate => {
            let Some(keys) = keyring(config) else {
                eprintln!(
                    "error: no [store] secret_key in {}: give one as secret_key = \"${{file:/etc/idsync/secret.key}}\" (make it with `openssl rand -base64 32`)",
                    config.file.display()
                );
                return Ok(EXIT_CONFIG);
            };
            let summary = rt.store.rotate_secrets(&keys, rt.clock.now_ms()).await?;
            out!(
                "{} secret(s) sealed again under key {}, {} already under it; the previous keys can be removed from [store] previous_secret_keys",
                summary.resealed,
                keys.current().id(),
                summary.current
            );
            Ok(0)
        }
    }
}
