//! The scriptable test target: an in-process stand-in for an application's user directory.
//!
//! It behaves like a strict application (unique userName and group displayName, unknown ids are
//! "not found", members must exist) and can be told to misbehave: 429 with Retry-After, 5xx,
//! timeouts before or *after* applying, permanent rejections, unavailability, a rate limit,
//! attributes it does not keep or computes itself ([`TestTarget::keep_only`]).
//! With a journal file every applied change is appended as one JSON line before the call
//! returns, so the state survives a kill -9 of the process and can be inspected by another one.

use async_trait::async_trait;
use idsync_core::{
    Clock, Form, Group, LearnedForm, OpKind, Outcome, RemoteGroup, RemoteUser, SystemClock, Target,
    TargetError, TargetOp, TargetSnapshot, User,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod journal;
mod quirks;

use journal::{replay, Entry, State};

/// A misbehaviour to inject.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// HTTP 429 with a Retry-After.
    TooManyRequests { retry_after: Duration },
    /// An HTTP 5xx answer.
    ServerError(u16),
    /// An HTTP 5xx answer with this reason (status and detail).
    ServerErrorWith(String),
    /// No answer within the duration; the operation is not applied.
    Timeout(Duration),
    /// The operation is applied, but the answer is lost (the caller sees a timeout).
    TimeoutAfterApply,
    /// A permanent refusal with this reason.
    Permanent(String),
    /// The application does not take this object (its own rule); nothing is written.
    Skip(String),
    /// The service is down: this call fails, and so do health checks and reads while queued
    /// faults of this kind remain.
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum TestTargetError {
    #[error("cannot use the journal {path}: {message}")]
    Journal { path: PathBuf, message: String },
    #[error("invalid pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
}

#[derive(Debug)]
struct Faults {
    queue: VecDeque<Fault>,
    rate: Option<(f64, Fault)>,
    rng: StdRng,
    reject: Vec<regex::Regex>,
    skip: Vec<regex::Regex>,
    /// Token bucket: operations per second, tokens, last refill (ms).
    bucket: Option<(f64, f64, i64)>,
    /// Operation kinds (`create_user`, ...) that always fail with this HTTP status and detail,
    /// as a server error that does not depend on the object.
    fail_every: Vec<(String, u16, String)>,
}

/// The scriptable test target.
pub struct TestTarget {
    state: Mutex<State>,
    faults: Mutex<Faults>,
    journal: Mutex<Option<BufWriter<File>>>,
    journal_path: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    calls: AtomicU64,
    searches: AtomicU64,
    injected: AtomicU64,
    /// How it departs from a compliant application (`quirks.rs`).
    quirks: Mutex<quirks::Quirks>,
    /// Without PATCH: changes are taken only as PUT of the whole object (see [`TestTarget::without_patch`]).
    no_patch: std::sync::atomic::AtomicBool,
    forms: Mutex<(BTreeMap<OpKind, Form>, Vec<LearnedForm>)>,
    patch_refusals: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for TestTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTarget {
    /// A target kept in memory only.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            faults: Mutex::new(Faults {
                queue: VecDeque::new(),
                rate: None,
                rng: StdRng::seed_from_u64(0x1d5c),
                reject: Vec::new(),
                skip: Vec::new(),
                bucket: None,
                fail_every: Vec::new(),
            }),
            journal: Mutex::new(None),
            journal_path: None,
            clock: Arc::new(SystemClock),
            calls: AtomicU64::new(0),
            searches: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            quirks: Mutex::new(quirks::Quirks::default()),
            no_patch: std::sync::atomic::AtomicBool::new(false),
            forms: Mutex::new((BTreeMap::new(), Vec::new())),
            patch_refusals: AtomicU64::new(0),
        }
    }

    /// A target whose state lives in a journal file: replayed on open (a torn last line, left by
    /// a kill -9, is cut off), appended to on every change.
    pub fn with_journal(path: &Path) -> Result<Self, TestTargetError> {
        let err = |message: String| TestTargetError::Journal {
            path: path.to_path_buf(),
            message,
        };
        let (state, good_len) = replay(path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        file.set_len(good_len).map_err(|e| err(e.to_string()))?;
        let t = Self::new();
        *lock(&t.state) = state;
        *lock(&t.journal) = Some(BufWriter::new(file));
        Ok(Self {
            journal_path: Some(path.to_path_buf()),
            ..t
        })
    }

    /// What another process's journal says the target holds, read without touching the file
    /// (the process may be writing to it: a torn last line is left alone). The target returned
    /// keeps no journal.
    pub fn read_journal(path: &Path) -> Result<Self, TestTargetError> {
        let (state, _) = replay(path)?;
        let t = Self::new();
        *lock(&t.state) = state;
        Ok(t)
    }

    /// Use this clock for the rate limit.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Seed the random fault generator.
    pub fn with_seed(self, seed: u64) -> Self {
        lock(&self.faults).rng = StdRng::seed_from_u64(seed);
        self
    }

    /// The next `n` calls to `apply` meet `fault` (queued after faults already queued).
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut f = lock(&self.faults);
        f.queue.extend(std::iter::repeat_n(fault, n));
    }

    /// A fraction `p` (0..=1) of calls meet `fault`.
    pub fn fail_rate(&self, p: f64, fault: Fault) {
        lock(&self.faults).rate = (p > 0.0).then_some((p.min(1.0), fault));
    }

    /// Users whose userName matches one of these patterns are refused for good.
    pub fn reject_user_names(&self, patterns: &[String]) -> Result<(), TestTargetError> {
        let reject = patterns
            .iter()
            .map(|p| {
                regex::Regex::new(p).map_err(|e| TestTargetError::Pattern {
                    pattern: p.clone(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        lock(&self.faults).reject = reject;
        Ok(())
    }

    /// Users whose userName matches one of these patterns are skipped (the application's own
    /// rule, as Atlassian Cloud skips users outside its verified domains).
    pub fn skip_user_names(&self, patterns: &[String]) -> Result<(), TestTargetError> {
        let skip = patterns
            .iter()
            .map(|p| {
                regex::Regex::new(p).map_err(|e| TestTargetError::Pattern {
                    pattern: p.clone(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        lock(&self.faults).skip = skip;
        Ok(())
    }

    /// Every operation of `kind` (`create_user`, `update_user`, ... as `TargetOp::kind` names
    /// them) fails with HTTP `status` and `detail`: 5xx as a server error (retryable), other
    /// statuses as a refusal. Searches and reads still work.
    pub fn fail_every(&self, kind: &str, status: u16, detail: &str) {
        lock(&self.faults)
            .fail_every
            .push((kind.to_string(), status, detail.to_string()));
    }

    /// Accept at most `per_second` operations per second; over it, answer 429 with Retry-After.
    /// 0 removes the limit.
    pub fn rate_limit(&self, per_second: u32) {
        let now = self.clock.now_ms();
        lock(&self.faults).bucket =
            (per_second > 0).then(|| (f64::from(per_second), f64::from(per_second), now));
    }

    pub fn apply_calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// How many times a user or group was searched for (matching before a create).
    pub fn searches(&self) -> u64 {
        self.searches.load(Ordering::SeqCst)
    }

    pub fn faults_injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    pub fn journal_path(&self) -> Option<&Path> {
        self.journal_path.as_deref()
    }

    /// Everything the target holds.
    pub fn state(&self) -> TargetSnapshot {
        let s = lock(&self.state);
        TargetSnapshot {
            users: s
                .users
                .iter()
                .map(|(id, u)| RemoteUser {
                    target_id: id.clone(),
                    user: u.clone(),
                })
                .collect(),
            groups: s
                .groups
                .iter()
                .map(|(id, g)| RemoteGroup {
                    target_id: id.clone(),
                    group: g.clone(),
                    members: s
                        .members
                        .get(id)
                        .map(|m| m.iter().cloned().collect())
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }

    pub fn user_count(&self) -> usize {
        lock(&self.state).users.len()
    }

    /// How many users have this userName (case-insensitive). More than one would be a duplicate.
    pub fn users_named(&self, user_name: &str) -> usize {
        lock(&self.state)
            .user_names
            .get(&user_name.to_lowercase())
            .map_or(0, BTreeSet::len)
    }

    /// An admin edits a user in the application by hand.
    pub fn hand_update_user(&self, target_id: &str, f: impl FnOnce(&mut User)) {
        let mut s = lock(&self.state);
        if let Some(mut u) = s.users.get(target_id).cloned() {
            f(&mut u);
            self.commit(
                &mut s,
                Entry::PutUser {
                    id: target_id.to_string(),
                    user: u,
                },
            );
        }
    }

    /// An admin deletes a user in the application by hand.
    pub fn hand_delete_user(&self, target_id: &str) {
        let mut s = lock(&self.state);
        self.commit(
            &mut s,
            Entry::DeleteUser {
                id: target_id.to_string(),
            },
        );
    }

    /// An admin removes a member from a group by hand.
    pub fn hand_remove_member(&self, group_id: &str, user_id: &str) {
        let mut s = lock(&self.state);
        self.commit(
            &mut s,
            Entry::RemoveMembers {
                group: group_id.to_string(),
                users: vec![user_id.to_string()],
            },
        );
    }

    /// Apply a change to the state and append it to the journal (flushed before returning).
    fn commit(&self, state: &mut State, entry: Entry) {
        if let Some(w) = lock(&self.journal).as_mut() {
            let written = serde_json::to_string(&entry)
                .map_err(std::io::Error::other)
                .and_then(|line| {
                    w.write_all(line.as_bytes())?;
                    w.write_all(b"\n")?;
                    w.flush()
                });
            if let Err(e) = written {
                tracing::error!(error = %e, "test target journal write failed");
            }
        }
        state.apply(&entry);
    }

    /// The fault this call meets, if any.
    fn next_fault(&self, op: &TargetOp) -> Option<Fault> {
        let mut f = lock(&self.faults);
        if let Some(fault) = f.queue.pop_front() {
            return Some(fault);
        }
        if let Some((p, fault)) = f.rate.clone() {
            if f.rng.gen_bool(p) {
                return Some(fault);
            }
        }
        if let Some((_, status, detail)) = f.fail_every.iter().find(|(k, ..)| k == op.kind()) {
            let reason = format!("HTTP {status}: {detail}");
            return Some(if *status >= 500 {
                Fault::ServerErrorWith(reason)
            } else {
                Fault::Permanent(reason)
            });
        }
        if let Some((rate, tokens, last)) = f.bucket {
            let now = self.clock.now_ms();
            let tokens = (tokens + (now - last) as f64 / 1000.0 * rate).min(rate);
            if tokens < 1.0 {
                f.bucket = Some((rate, tokens, now));
                let wait_ms = ((1.0 - tokens) / rate * 1000.0).ceil() as u64;
                return Some(Fault::TooManyRequests {
                    retry_after: Duration::from_millis(wait_ms.max(1)),
                });
            }
            f.bucket = Some((rate, tokens - 1.0, now));
        }
        let name = match op {
            TargetOp::CreateUser { user } => Some(&user.user_name),
            TargetOp::UpdateUser { after, .. } => Some(&after.user_name),
            _ => None,
        };
        if let Some(name) = name {
            if f.skip.iter().any(|r| r.is_match(name)) {
                return Some(Fault::Skip(format!(
                    "userName {name:?} is outside what this application takes"
                )));
            }
            if f.reject.iter().any(|r| r.is_match(name)) {
                return Some(Fault::Permanent(format!(
                    "userName {name:?} is not allowed by this application"
                )));
            }
        }
        None
    }

    fn queued_unavailable(&self) -> bool {
        lock(&self.faults).queue.contains(&Fault::Unavailable)
    }

    fn do_apply(&self, op: &TargetOp) -> Outcome {
        let mut s = lock(&self.state);
        let rejected = |reason: String| Outcome::Rejected { reason };
        let not_found = |what: &str, id: &str| Outcome::NotFound {
            reason: format!("no {what} with id {id}"),
        };
        let applied = |id: Option<String>| Outcome::Applied { target_id: id };
        match op {
            TargetOp::CreateUser { user } => {
                if s.user_named(&user.user_name, None).is_some() {
                    return rejected(format!("userName {:?} already exists", user.user_name));
                }
                let id = uuid::Uuid::new_v4().to_string();
                let mut user = self.as_held(user.clone());
                user.id.clear();
                self.commit(
                    &mut s,
                    Entry::PutUser {
                        id: id.clone(),
                        user,
                    },
                );
                applied(Some(id))
            }
            TargetOp::UpdateUser {
                target_id, after, ..
            } => {
                if !s.users.contains_key(target_id) {
                    return not_found("user", target_id);
                }
                if s.user_named(&after.user_name, Some(target_id)).is_some() {
                    return rejected(format!("userName {:?} already exists", after.user_name));
                }
                let mut user = self.as_held(after.clone());
                user.id.clear();
                self.commit(
                    &mut s,
                    Entry::PutUser {
                        id: target_id.clone(),
                        user,
                    },
                );
                applied(None)
            }
            TargetOp::DeleteUser { target_id } => {
                if !s.users.contains_key(target_id) {
                    return not_found("user", target_id);
                }
                self.commit(
                    &mut s,
                    Entry::DeleteUser {
                        id: target_id.clone(),
                    },
                );
                applied(None)
            }
            TargetOp::CreateGroup { group, members } => {
                if s.group_named(&group.display_name, None).is_some() {
                    return rejected(format!("group {:?} already exists", group.display_name));
                }
                if let Some(missing) = members.iter().find(|u| !s.users.contains_key(*u)) {
                    return rejected(format!("no user with id {missing}"));
                }
                let id = uuid::Uuid::new_v4().to_string();
                let mut group = group.clone();
                group.id.clear();
                self.commit(
                    &mut s,
                    Entry::PutGroup {
                        id: id.clone(),
                        group,
                    },
                );
                if !members.is_empty() {
                    self.commit(
                        &mut s,
                        Entry::AddMembers {
                            group: id.clone(),
                            users: members.clone(),
                        },
                    );
                }
                applied(Some(id))
            }
            TargetOp::UpdateGroup {
                target_id, after, ..
            } => {
                if !s.groups.contains_key(target_id) {
                    return not_found("group", target_id);
                }
                if s.group_named(&after.display_name, Some(target_id))
                    .is_some()
                {
                    return rejected(format!("group {:?} already exists", after.display_name));
                }
                let mut group = after.clone();
                group.id.clear();
                self.commit(
                    &mut s,
                    Entry::PutGroup {
                        id: target_id.clone(),
                        group,
                    },
                );
                applied(None)
            }
            TargetOp::DeleteGroup { target_id } => {
                if !s.groups.contains_key(target_id) {
                    return not_found("group", target_id);
                }
                self.commit(
                    &mut s,
                    Entry::DeleteGroup {
                        id: target_id.clone(),
                    },
                );
                applied(None)
            }
            TargetOp::AddMembers { group_id, user_ids } => {
                if !s.groups.contains_key(group_id) {
                    return not_found("group", group_id);
                }
                if let Some(missing) = user_ids.iter().find(|u| !s.users.contains_key(*u)) {
                    return rejected(format!("no user with id {missing}"));
                }
                self.commit(
                    &mut s,
                    Entry::AddMembers {
                        group: group_id.clone(),
                        users: user_ids.clone(),
                    },
                );
                applied(None)
            }
            TargetOp::RemoveMembers { group_id, user_ids } => {
                if !s.groups.contains_key(group_id) {
                    return not_found("group", group_id);
                }
                self.commit(
                    &mut s,
                    Entry::RemoveMembers {
                        group: group_id.clone(),
                        users: user_ids.clone(),
                    },
                );
                applied(None)
            }
            TargetOp::AddChildGroups { .. } | TargetOp::RemoveChildGroups { .. } => {
                rejected("the test target has no nested groups".into())
            }
        }
    }
}

#[async_trait]
impl Target for TestTarget {
    async fn value_taken(&self, attribute: &str, value: &str) -> Result<bool, TargetError> {
        Ok(self.state().users.iter().any(|u| {
            idsync_core::mapping::get(&u.user, attribute)
                .text()
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
        }))
    }

    fn use_forms(&self, forms: &[LearnedForm]) {
        let mut f = lock(&self.forms);
        for l in forms {
            f.0.insert(l.kind, l.form);
        }
    }

    fn take_learned_forms(&self) -> Vec<LearnedForm> {
        std::mem::take(&mut lock(&self.forms).1)
    }

    fn members_in_create(&self) -> bool {
        self.members_go_in_create()
    }

    fn project_user(&self, user: User) -> User {
        self.without_omitted(user)
    }

    fn project_observed_user(&self, user: User) -> User {
        self.without_omitted(user)
    }

    fn use_omissions(&self, paths: &[String]) {
        self.omit_learned(paths);
    }

    fn take_learned_omissions(&self) -> Vec<idsync_core::LearnedOmission> {
        self.take_omissions()
    }

    fn describe(&self) -> String {
        match &self.journal_path {
            Some(p) => format!("test target ({})", p.display()),
            None => "test target (memory)".into(),
        }
    }

    async fn health(&self) -> Result<(), TargetError> {
        if self.queued_unavailable() {
            return Err(TargetError::Unavailable(
                "HTTP 503 Service Unavailable".into(),
            ));
        }
        Ok(())
    }

    async fn find_user(&self, user: &User) -> Result<Option<String>, TargetError> {
        self.searches.fetch_add(1, Ordering::SeqCst);
        self.health().await?;
        let s = lock(&self.state);
        if let Some(id) = s.user_named(&user.user_name, None) {
            return Ok(Some(id.to_string()));
        }
        Ok(user
            .primary_email()
            .and_then(|email| s.user_with_email(email))
            .map(str::to_string))
    }

    async fn emptiness(&self) -> Result<idsync_core::Emptiness, TargetError> {
        self.health().await?;
        let s = lock(&self.state);
        Ok(idsync_core::Emptiness {
            users: s.users.is_empty(),
            groups: s.groups.is_empty(),
        })
    }

    async fn find_group(&self, group: &Group) -> Result<Option<String>, TargetError> {
        self.searches.fetch_add(1, Ordering::SeqCst);
        self.health().await?;
        Ok(lock(&self.state)
            .group_named(&group.display_name, None)
            .map(str::to_string))
    }

    async fn apply(&self, op: &TargetOp) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let fault = self.next_fault(op);
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        match fault {
            None => match self.screen(op) {
                Ok(op) => {
                    self.negotiate_form(&op);
                    self.do_apply(&op)
                }
                Err(refused) => refused,
            },
            Some(Fault::TooManyRequests { retry_after }) => Outcome::Retryable {
                reason: "HTTP 429 Too Many Requests".into(),
                retry_after: Some(retry_after),
            },
            Some(Fault::ServerError(code)) => Outcome::Retryable {
                reason: format!("HTTP {code}"),
                retry_after: None,
            },
            Some(Fault::ServerErrorWith(reason)) => Outcome::Retryable {
                reason,
                retry_after: None,
            },
            Some(Fault::Timeout(d)) => {
                tokio::time::sleep(d).await;
                Outcome::Retryable {
                    reason: "timed out".into(),
                    retry_after: None,
                }
            }
            Some(Fault::TimeoutAfterApply) => {
                let _ = self.do_apply(op);
                Outcome::Retryable {
                    reason: "timed out".into(),
                    retry_after: None,
                }
            }
            Some(Fault::Permanent(reason)) => Outcome::Rejected { reason },
            Some(Fault::Skip(reason)) => Outcome::Skipped { reason },
            Some(Fault::Unavailable) => Outcome::Retryable {
                reason: "HTTP 503 Service Unavailable".into(),
                retry_after: None,
            },
        }
    }

    async fn read_state(&self) -> Result<TargetSnapshot, TargetError> {
        self.health().await?;
        Ok(self.state())
    }
}
