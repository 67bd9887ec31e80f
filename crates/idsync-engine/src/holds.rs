//! Held runs answered: `idsync approve` runs the flow and deprovisions what was held, `idsync
//! reject` lets the flow stop waiting.

use crate::error::EngineError;
use crate::progress::Progress;
use crate::run::{Mode, RunOptions, RunReport, Trigger};
use crate::runtime::Runtime;

impl Runtime {
    /// The held run `run_id`, checked to be the one its flow waits on.
    async fn waiting_hold(&self, run_id: &str) -> Result<idsync_store::Run, EngineError> {
        let run = self
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
        let not_held = |why: String| EngineError::NotHeld {
            run: run_id.to_string(),
            why,
        };
        if run.status != idsync_store::RunStatus::Held {
            return Err(not_held(format!("it {}", run.status)));
        }
        if let Some(r) = &run.resolution {
            let latest = self.store.pending_hold(&run.flow).await?;
            return Err(not_held(match latest {
                Some(l) => format!("it was {r}; the flow waits on run {}", l.id),
                None => format!("it was {r}"),
            }));
        }
        Ok(run)
    }

    /// Approve what a held run held: the flow runs now and deprovisions those users (the ones
    /// still to deprovision); deprovisions that appeared since are held again if above the
    /// threshold.
    pub async fn approve(
        &self,
        run_id: &str,
        progress: &dyn Progress,
    ) -> Result<RunReport, EngineError> {
        let run = self.waiting_hold(run_id).await?;
        tracing::info!(run = run_id, flow = %run.flow, "held deprovisions approved");
        self.run(
            &run.flow,
            RunOptions {
                trigger: Trigger::Approval,
                mode: Mode::Full,
                dry_run: false,
            },
            false,
            progress,
        )
        .await
    }

    /// Reject what a held run held: nothing is deprovisioned, and the flow stops waiting. Later
    /// runs judge their deprovisions against the threshold again (fix the source, or change the
    /// threshold, if they are still wanted).
    pub async fn reject(&self, run_id: &str) -> Result<idsync_store::Run, EngineError> {
        let run = self.waiting_hold(run_id).await?;
        let now = self.clock.now_ms();
        if !self.store.resolve_hold(run_id, "rejected", now).await? {
            return Err(EngineError::NotHeld {
                run: run_id.to_string(),
                why: "it was answered meanwhile".into(),
            });
        }
        tracing::info!(run = run_id, flow = %run.flow, "held deprovisions rejected");
        Ok(self.store.get_run(run_id).await?.unwrap_or(run))
    }
}
