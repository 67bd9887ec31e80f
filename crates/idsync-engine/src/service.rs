//! The long-running service: per-source schedules, change-log followers that carry a change to
//! the flow's target within a second, periodic full reconciles, manual triggers, retention.

use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::progress::NoProgress;
use crate::run::{Mode, RunOptions, RunReport, Trigger};
use crate::runtime::{quarantine_backoff_ms, FlowEntry, Runtime};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a follower looks at the change log when nothing woke it (writes made by another
/// process are seen this way).
const POLL: Duration = Duration::from_millis(500);
const RETRY_FIRST_MS: i64 = 1_000;
const RETRY_MAX_MS: i64 = 300_000;

/// What a change-log follower remembers between looks.
struct Follow {
    last_reconcile: i64,
    failures: u32,
    /// After a failed run: no new run before this time (ms).
    not_before: i64,
    /// Another process ran the flow at the last look (said once).
    busy: bool,
}

pub struct Service {
    pub runtime: Arc<Runtime>,
    /// Per directory: bumped when a write lands, with the trigger that caused it.
    signals: BTreeMap<String, watch::Sender<(u64, Trigger)>>,
    pub metrics: Metrics,
}

impl Service {
    pub fn new(runtime: Arc<Runtime>) -> Arc<Self> {
        let mut signals = BTreeMap::new();
        for dir in runtime
            .flows
            .values()
            .map(|f| f.spec.directory.clone())
            .chain(runtime.sources.values().map(|s| s.directory.clone()))
        {
            signals
                .entry(dir)
                .or_insert_with(|| watch::channel((0u64, Trigger::Schedule)).0);
        }
        Arc::new(Self {
            runtime,
            signals,
            metrics: Metrics::default(),
        })
    }

    /// Say that a directory changed (a push source wrote to it): its flows run at once.
    pub fn notify(&self, directory: &str, trigger: Trigger) {
        if let Some(tx) = self.signals.get(directory) {
            tx.send_modify(|(n, t)| {
                *n += 1;
                *t = trigger;
            });
        }
    }

    /// Run a flow now, waiting for a run of it that is under way to finish first.
    pub async fn trigger(
        &self,
        flow: &str,
        mode: Mode,
        trigger: Trigger,
        read_source: bool,
    ) -> Result<RunReport, EngineError> {
        let opts = RunOptions {
            trigger,
            mode,
            dry_run: false,
        };
        self.serialized(flow, self.runtime.run(flow, opts, read_source, &NoProgress))
            .await
    }

    /// Run `work` for `flow` after any run of it under way, and count its outcome.
    async fn serialized(
        &self,
        flow: &str,
        work: impl std::future::Future<Output = Result<RunReport, EngineError>>,
    ) -> Result<RunReport, EngineError> {
        if !self.runtime.flows.contains_key(flow) {
            return Err(EngineError::UnknownFlow(flow.to_string()));
        }
        // The runtime's lock: logins' runs of the flow take it too.
        let lock = self.runtime.flow_lock(flow);
        let _guard = lock.lock().await;
        let result = work.await;
        match &result {
            Ok(report) => self.metrics.record_run(report),
            Err(EngineError::Busy { .. } | EngineError::NothingToReconcile { .. }) => {}
            Err(_) => self.metrics.record_failure(flow),
        }
        result
    }

    /// Approve a held run, serialized with the flow's other runs.
    pub async fn approve(&self, run_id: &str) -> Result<RunReport, EngineError> {
        let flow = self
            .runtime
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?
            .flow;
        self.serialized(&flow, self.runtime.approve(run_id, &NoProgress))
            .await
    }

    /// Start the schedules and followers. They stop when `shutdown` turns true.
    pub fn start(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        for (name, src) in &self.runtime.sources {
            if let Some(interval) = src.interval {
                let svc = Arc::clone(self);
                let name = name.clone();
                let mut stop = shutdown.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        svc.read_source(&name).await;
                        tokio::select! {
                            _ = tokio::time::sleep(interval) => {}
                            _ = stop.changed() => break,
                        }
                    }
                }));
            }
        }
        for (name, flow) in &self.runtime.flows {
            if !flow.enabled {
                continue;
            }
            let Some(tx) = self.signals.get(&flow.spec.directory) else {
                continue;
            };
            let mut rx = tx.subscribe();
            let svc = Arc::clone(self);
            let name = name.clone();
            let mut stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let mut state = Follow {
                    last_reconcile: svc.runtime.clock.now_ms(),
                    failures: 0,
                    not_before: 0,
                    busy: false,
                };
                loop {
                    svc.follow_once(&name, &rx, &mut state).await;
                    tokio::select! {
                        _ = rx.changed() => {}
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.changed() => break,
                    }
                }
            }));
        }
        let svc = Arc::clone(self);
        let mut stop = shutdown;
        tasks.push(tokio::spawn(async move {
            loop {
                svc.purge().await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                    _ = stop.changed() => break,
                }
            }
        }));
        tasks
    }

    async fn read_source(&self, name: &str) {
        // The flows this source feeds; when every one of them is quarantined and waiting, so is
        // the source's schedule.
        let fed: Vec<&FlowEntry> = self
            .runtime
            .flows
            .values()
            .filter(|f| f.source.as_deref() == Some(name))
            .collect();
        let mut waiting = !fed.is_empty();
        for f in &fed {
            waiting &= self.quarantine_wait(&f.spec.name).await;
        }
        if waiting {
            return;
        }
        match self.runtime.ingest(name).await {
            Ok(report) if report.changes > 0 => self.notify(&report.directory, Trigger::Schedule),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(source = name, error = %e, "scheduled source read failed");
                // A source that cannot be read is a bad run of every flow it feeds.
                let failed: Result<RunReport, EngineError> = Err(e);
                for f in fed {
                    self.runtime.watch(f, &failed).await;
                }
            }
        }
    }

    /// Whether a quarantined flow is still within its backoff.
    async fn quarantine_wait(&self, flow: &str) -> bool {
        match self.runtime.store.flow_health(flow).await {
            Ok(h) if h.quarantined_ms.is_some() => {
                let next = h.last_failure_ms.unwrap_or(0) + quarantine_backoff_ms(h.failures);
                self.runtime.clock.now_ms() < next
            }
            _ => false,
        }
    }

    async fn follow_once(
        &self,
        flow: &str,
        rx: &watch::Receiver<(u64, Trigger)>,
        state: &mut Follow,
    ) {
        let Ok(entry) = self.runtime.flow(flow) else {
            return;
        };
        let now = self.runtime.clock.now_ms();
        if now < state.not_before {
            return;
        }
        if self.quarantine_wait(flow).await {
            // Only when there is something to run: that is what quarantine holds back.
            let behind = match (
                self.runtime.store.last_seq(&entry.spec.directory).await,
                self.runtime.store.flow_cursor(flow).await,
            ) {
                (Ok(last), Ok(cursor)) => last > cursor,
                _ => false,
            };
            if behind {
                self.metrics.record_quarantine_skip(flow);
            }
            return;
        }
        let reconcile_due = entry.full_reconcile_interval.is_some_and(|iv| {
            now - state.last_reconcile >= i64::try_from(iv.as_millis()).unwrap_or(i64::MAX)
        });
        let store = &self.runtime.store;
        let behind = match (
            store.last_seq(&entry.spec.directory).await,
            store.flow_cursor(flow).await,
        ) {
            (Ok(last), Ok(cursor)) => last > cursor,
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(flow, error = %e, "cannot read the change log");
                return;
            }
        };
        let (mode, trigger) = if reconcile_due {
            state.last_reconcile = now;
            (Mode::Reconcile, Trigger::Schedule)
        } else if behind {
            (Mode::Incremental, rx.borrow().1)
        } else {
            return;
        };
        match self.trigger(flow, mode, trigger, false).await {
            Ok(_) => {
                state.failures = 0;
                state.busy = false;
            }
            // Another process runs the flow (an `idsync sync`): this follower looks again
            // at its next poll and carries on from where that run left the cursor.
            Err(e @ EngineError::Busy { .. }) => {
                if !std::mem::replace(&mut state.busy, true) {
                    tracing::info!(flow, reason = %e, "not running the flow now");
                }
                if mode == Mode::Reconcile {
                    state.last_reconcile = 0;
                }
            }
            Err(e) => {
                // A run that could not complete (target or store unreachable) is tried again
                // later, not in a tight loop: 1 s, 2 s, 4 s ... up to 5 minutes.
                state.failures = state.failures.saturating_add(1);
                let wait = RETRY_FIRST_MS.saturating_mul(1 << state.failures.min(9)) / 2;
                state.not_before = now + wait.min(RETRY_MAX_MS);
                tracing::error!(flow, error = %e, failures = state.failures, retry_in_ms = wait.min(RETRY_MAX_MS), "run failed");
            }
        }
    }

    async fn purge(&self) {
        let days = i64::from(self.runtime.retention_days);
        let cutoff = self.runtime.clock.now_ms() - days * 86_400_000;
        match self.runtime.store.purge_before(cutoff).await {
            Ok(summary) => tracing::info!(?summary, "retention purge"),
            Err(e) => tracing::error!(error = %e, "retention purge failed"),
        }
        // The event feeds of crowd targets keep their own retention, and no more events than
        // a token can be answered with (tokens from before answer "expired" and the products
        // synchronise in full).
        for (target, c) in &self.runtime.crowd {
            let keep = i64::try_from(c.config.event_retention.as_millis()).unwrap_or(i64::MAX);
            let cutoff = self.runtime.clock.now_ms().saturating_sub(keep);
            let keep_last = idsync_crowd::event::MAX_EVENTS_PER_ANSWER as i64;
            match self
                .runtime
                .store
                .purge_crowd_events(target, cutoff, keep_last)
                .await
            {
                Ok(0) => {}
                Ok(events) => tracing::info!(target, events, "crowd event feed purged"),
                Err(e) => tracing::error!(target, error = %e, "crowd event feed purge failed"),
            }
        }
    }
}
