//! What happens at a login, below the protocols (decision 0042): the login's attributes and
//! groups update the source's directory (with the change log, and the login recorded for
//! `inactive_after`), group ids become names, a disabled or unscoped user is refused, and each
//! of the user's flows runs for that user, with a bounded wait.

use crate::error::EngineError;
use crate::progress::NoProgress;
use crate::run::{run_flow, Mode, RunContext, RunOptions, Trigger};
use crate::runtime::{FlowEntry, Runtime};
use idsync_connectors::sources::msgraph::GraphSource;
use idsync_core::groups::apply_group_rules;
use idsync_core::scope::apply_scope;
use idsync_core::{desired_state, AttrValue, Change, Group, MemberKind, MemberRef, Snapshot, User};
use idsync_store::RunStatus;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A source that takes logins: its directory, how long a login waits for the user's flows,
/// and the Graph connection that names group ids and resolves group overage.
pub struct LoginSource {
    pub name: String,
    pub directory: String,
    /// `login_wait`.
    pub wait: Duration,
    /// The source's own Graph connection (msgraph), or the one its `graph` key names (login).
    pub graph: Option<Arc<GraphSource>>,
    /// A reader fills the directory (msgraph, scim push): its groups are the source's to
    /// decide, and a login changes memberships only in groups the directory holds. A `login`
    /// source's directory gets the login's groups as new groups.
    pub read_by_source: bool,
}

/// A login, as the protocol layer hands it over.
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// The source it belongs to.
    pub source: String,
    /// The user's stable id in that source (Entra `oid`: the Graph user id).
    pub subject: String,
    /// The attributes the login carried, in directory attribute names (`userName`,
    /// `displayName`, `emails`, `name` with its parts, `department`, ...; other names are
    /// custom attributes): only those present. `id`, `sourceId` and `active` cannot be set.
    pub attributes: Map<String, Value>,
    /// The group ids as sent; None when the login carried no groups claim (B2C).
    pub groups: Option<Vec<String>>,
    /// The IdP could not put every group in the token (Entra's `_claim_names` / `groups.link`):
    /// the user's groups are read through Graph (`getMemberObjects`).
    pub groups_overage: bool,
}

/// What a login did.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The user as the directory holds it after the login (before it, for a refused login).
    pub user: Option<User>,
    /// The user was new to the directory (created just in time).
    pub created: bool,
    pub decision: LoginDecision,
    /// What could not be done and did not stop the login (a group id without a name, an
    /// overage that could not be resolved).
    pub warnings: Vec<String>,
    /// How long the login waited for the user's flows' runs (at most `login_wait`; zero for a
    /// refused login): the provisioning part of its time.
    pub flows_wait: Duration,
}

#[derive(Debug, Clone)]
pub enum LoginDecision {
    /// The user may proceed; each flow that provisions the user, in flow-name order.
    Allowed { flows: Vec<FlowLogin> },
    /// Refused, with why in words (for the page the user sees).
    Refused { reason: String },
}

/// One flow's part in a login.
#[derive(Debug, Clone)]
pub struct FlowLogin {
    pub flow: String,
    pub target: String,
    /// The group names the flow gives the user after its group rules: what the product
    /// receives in its `groups` claim.
    pub groups: Vec<String>,
    pub run: FlowRun,
}

/// Where the flow's run for the user stands when the login returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowRun {
    /// It ran; `run_id` is in `idsync runs` / `idsync log`.
    Finished { run_id: String, status: RunStatus },
    /// It could not run (the error in words). The change is in the change log: the flow's next
    /// run applies it.
    Failed { error: String },
    /// Still waiting or running when `login_wait` was over: it finishes after the login.
    Running,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("no source named {0:?} takes logins")]
    UnknownSource(String),
    #[error("a login needs the user's id in the source (its subject)")]
    NoSubject,
    #[error("login attribute {attribute}: {message}")]
    BadAttribute { attribute: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<idsync_store::StoreError> for LoginError {
    fn from(e: idsync_store::StoreError) -> Self {
        LoginError::Engine(e.into())
    }
}

/// The User fields a login may set, by their directory names.
const FIELDS: &[&str] = &[
    "externalId",
    "userName",
    "name",
    "displayName",
    "emails",
    "phoneNumbers",
    "addresses",
    "nickName",
    "userType",
    "title",
    "department",
    "employeeId",
    "organization",
    "division",
    "costCenter",
    "manager",
    "preferredLanguage",
    "locale",
    "timezone",
    "profileUrl",
    "ims",
    "photos",
    "entitlements",
    "roles",
    "x509Certificates",
];

/// The user after the login's attributes: those present replace the directory's, the others
/// stay. A new user takes its userName from the login, else its email, else its subject.
fn merged(existing: Option<&User>, login: &Login) -> Result<User, LoginError> {
    let bad = |attribute: &str, message: String| LoginError::BadAttribute {
        attribute: attribute.to_string(),
        message,
    };
    let base = existing.cloned().unwrap_or_else(|| {
        let name = login
            .attributes
            .get("emails")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|e| e.get("value"))
            .and_then(Value::as_str)
            .unwrap_or(&login.subject);
        User::new(login.subject.clone(), name)
    });
    let mut custom = base.custom.clone();
    let mut obj = match serde_json::to_value(&base) {
        Ok(Value::Object(o)) => o,
        _ => return Err(bad("(user)", "cannot be represented".into())),
    };
    for (k, v) in &login.attributes {
        match k.as_str() {
            "id" | "sourceId" | "active" => {
                return Err(bad(
                    k,
                    "is idsync's or the directory's to say, never a login's".into(),
                ))
            }
            "name" => {
                let Value::Object(parts) = v else {
                    return Err(bad(k, "expected an object of name parts".into()));
                };
                let mut name = match obj.remove("name") {
                    Some(Value::Object(n)) => n,
                    _ => Map::new(),
                };
                for (p, pv) in parts {
                    name.insert(p.clone(), pv.clone());
                }
                name.retain(|_, v| !v.is_null());
                obj.insert("name".into(), Value::Object(name));
            }
            f if FIELDS.contains(&f) => {
                if v.is_null() {
                    obj.remove(f);
                } else {
                    obj.insert(f.to_string(), v.clone());
                }
            }
            other => {
                let value = match v {
                    Value::Null => {
                        custom.remove(other);
                        continue;
                    }
                    v => custom_value(v).ok_or_else(|| {
                        bad(
                            other,
                            "a custom attribute takes a string, number, boolean or a list of them"
                                .into(),
                        )
                    })?,
                };
                custom.insert(other.to_string(), value);
            }
        }
    }
    obj.remove("custom");
    let mut user: User =
        serde_json::from_value(Value::Object(obj)).map_err(|e| bad("(user)", e.to_string()))?;
    user.custom = custom;
    if user.user_name.trim().is_empty() {
        return Err(bad("userName", "cannot be empty".into()));
    }
    Ok(user)
}

fn custom_value(v: &Value) -> Option<AttrValue> {
    Some(match v {
        Value::String(s) => AttrValue::String(s.clone()),
        Value::Bool(b) => AttrValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AttrValue::Integer(i),
            None => AttrValue::Decimal(n.as_f64()?),
        },
        Value::Array(a) => AttrValue::Multi(a.iter().map(custom_value).collect::<Option<_>>()?),
        Value::Null | Value::Object(_) => return None,
    })
}

/// Per flow, the users waiting for a login run, each with where to say how it went.
pub(crate) type LoginQueue = std::sync::Mutex<Vec<(String, oneshot::Sender<FlowRun>)>>;

impl Runtime {
    /// The flows of a directory that are enabled, in name order.
    fn flows_of(&self, directory: &str) -> Vec<&FlowEntry> {
        self.flows
            .values()
            .filter(|f| f.enabled && f.spec.directory == directory)
            .collect()
    }

    /// A login (decision 0042): update the directory from it, refuse a disabled user or one no
    /// flow scopes in, then run the user's flows for that user and wait for them at most the
    /// source's `login_wait` (the runs are not tied to this call: they finish even when it
    /// returns or is dropped).
    pub async fn login(self: &Arc<Self>, login: Login) -> Result<LoginOutcome, LoginError> {
        let src = self
            .login_sources
            .get(&login.source)
            .ok_or_else(|| LoginError::UnknownSource(login.source.clone()))?;
        if login.subject.trim().is_empty() {
            return Err(LoginError::NoSubject);
        }
        let dir = src.directory.clone();
        let mut warnings = Vec::new();
        let groups = self.login_groups(src, &login, &mut warnings).await;

        // Read, decide and write under the user's login lock: two logins of one user do not
        // interleave their reads and writes; logins of other users do not wait for it.
        let lock = self.login_lock(&dir, &login.subject);
        let guard = lock.lock().await;
        let existing = self
            .store
            .get_user(&dir, &login.subject)
            .await?
            .map(|s| s.user);
        let user = merged(existing.as_ref(), &login)?;
        let flows = self.flows_of(&dir);
        let refusal = if existing.as_ref().is_some_and(|u| !u.active) {
            Some("your account is disabled in the directory".to_string())
        } else if flows.is_empty() {
            Some(format!(
                "no flow provisions users of {} (directory {dir})",
                src.name
            ))
        } else if !flows.iter().any(|f| f.spec.scope.verdict(&user).in_scope) {
            let why: Vec<String> = flows
                .iter()
                .map(|f| format!("{}: {}", f.spec.name, f.spec.scope.verdict(&user).reason))
                .collect();
            Some(format!("no flow gives you access ({})", why.join("; ")))
        } else {
            None
        };
        if let Some(reason) = refusal {
            drop(guard);
            tracing::warn!(source = %src.name, subject = %login.subject, user = %user.user_name, reason = %reason, "login refused");
            return Ok(LoginOutcome {
                user: existing.or(Some(user)),
                created: false,
                decision: LoginDecision::Refused { reason },
                warnings,
                flows_wait: Duration::ZERO,
            });
        }
        let created = existing.is_none();
        let mut changes = Vec::new();
        if existing.as_ref() != Some(&user) {
            changes.push(Change::UpsertUser { user: user.clone() });
        }
        if let Some(groups) = &groups {
            changes.extend(self.membership_changes(src, &login.subject, groups).await?);
        }
        let now = self.clock.now_ms();
        let written = self
            .store
            .record_login(&dir, &src.name, &login.subject, &changes, now)
            .await?;
        drop(guard);
        tracing::info!(source = %src.name, subject = %login.subject, user = %user.user_name, created, changes = written.changes, "login");

        // The user's flows, each for this user, concurrently.
        let in_scope: Vec<&FlowEntry> = flows
            .into_iter()
            .filter(|f| f.spec.scope.verdict(&user).in_scope)
            .collect();
        let waits: Vec<_> = in_scope
            .iter()
            .map(|f| self.run_for_login(&f.spec.name, &login.subject))
            .collect();
        let waiting = tokio::time::Instant::now();
        let deadline = waiting + src.wait;
        let outcomes = futures::future::join_all(waits.into_iter().map(|rx| async move {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(run)) => run,
                Ok(Err(_)) => FlowRun::Failed {
                    error: "the run ended without an answer".into(),
                },
                Err(_) => FlowRun::Running,
            }
        }))
        .await;
        let flows_wait = waiting.elapsed();
        // The user's slice of the directory and of each ledger: a login's cost is the user's,
        // whatever the size of the directory.
        let snapshot = self.store.user_slice(&dir, &login.subject).await?;
        let mut flows_out = Vec::new();
        for (f, run) in in_scope.into_iter().zip(outcomes) {
            let ledger = if f.spec.groups.default_new.is_empty() {
                // Only `default_new` reads the ledger (was the user there, and in the group).
                idsync_core::LedgerState::default()
            } else {
                self.store
                    .ledger_user_slice(&f.spec.name, &login.subject)
                    .await?
            };
            flows_out.push(FlowLogin {
                flow: f.spec.name.clone(),
                target: f.spec.target.clone(),
                groups: flow_groups(f, &snapshot, &ledger, &login.subject),
                run,
            });
        }
        Ok(LoginOutcome {
            user: Some(user),
            created,
            decision: LoginDecision::Allowed { flows: flows_out },
            warnings,
            flows_wait,
        })
    }

    /// The login's groups as ids with names: the overage resolved through Graph, each id named
    /// by the directory, a flow's `names` table, or Graph. None: memberships stay as they are.
    async fn login_groups(
        &self,
        src: &LoginSource,
        login: &Login,
        warnings: &mut Vec<String>,
    ) -> Option<Vec<(String, String)>> {
        let mut ids = login.groups.clone();
        if login.groups_overage {
            match &src.graph {
                Some(g) => match g.client().member_objects(&login.subject, true).await {
                    Ok(all) => ids = Some(all),
                    Err(e) => {
                        let w = format!("the user's groups could not be read through Graph (group overage), so they stay as the directory has them: {e}");
                        tracing::warn!(source = %src.name, subject = %login.subject, error = %e, "group overage not resolved");
                        warnings.push(w);
                        ids = None;
                    }
                },
                None => {
                    warnings.push(format!("the login carried too many groups for its token (group overage) and source {} has no Graph connection to read them: the user's groups stay as the directory has them", src.name));
                    ids = None;
                }
            }
        }
        let ids = ids?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for id in ids {
            if id.is_empty() || !seen.insert(id.clone()) {
                continue;
            }
            let name = match self.store.get_group(&src.directory, &id).await {
                Ok(Some(g)) => Some(g.group.display_name),
                _ => None,
            };
            let name = match name {
                Some(n) => Some(n),
                None => self
                    .flows_of(&src.directory)
                    .iter()
                    .find_map(|f| f.spec.groups.names.get(&id).cloned()),
            };
            let name = match (name, &src.graph) {
                (Some(n), _) => Some(n),
                (None, Some(g)) if !src.read_by_source => match g.client().group_name(&id).await {
                    Ok(n) => n,
                    Err(e) => {
                        warnings.push(format!("group {id}: no name from Graph ({e})"));
                        None
                    }
                },
                (None, _) => None,
            };
            if name.is_none() && !src.read_by_source {
                warnings.push(format!("group {id} has no name (not in the directory, in no flow's names table, no Graph connection): it is known by its id"));
            }
            out.push((id.clone(), name.unwrap_or(id)));
        }
        Some(out)
    }

    /// The changes that make the user's direct memberships the login's groups.
    async fn membership_changes(
        &self,
        src: &LoginSource,
        subject: &str,
        groups: &[(String, String)],
    ) -> Result<Vec<Change>, LoginError> {
        let dir = &src.directory;
        let ids: Vec<&str> = groups.iter().map(|(id, _)| id.as_str()).collect();
        let kinds = self.store.kinds_of(dir, &ids).await?;
        let mut changes = Vec::new();
        let mut wanted = BTreeSet::new();
        for (id, name) in groups {
            match kinds.get(id) {
                Some(MemberKind::Group) => {}
                Some(MemberKind::User) => continue,
                None if src.read_by_source => {
                    // The source decides which groups its directory holds; its next read
                    // brings a new group with its members.
                    tracing::debug!(group = %id, "login group not in the directory: left to the source's next read");
                    continue;
                }
                None => changes.push(Change::UpsertGroup {
                    group: Group::new(id.clone(), name.clone()),
                }),
            }
            wanted.insert(id.clone());
        }
        let current: BTreeSet<String> = self
            .store
            .member_of(dir, subject)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for g in self.direct_additions(dir, &wanted, &current).await? {
            changes.push(Change::AddMember {
                group: g,
                member: MemberRef::user(subject),
            });
        }
        for g in current.difference(&wanted) {
            changes.push(Change::RemoveMember {
                group: g.clone(),
                member: MemberRef::user(subject),
            });
        }
        Ok(changes)
    }

    /// The groups of `wanted` the user must join directly. Entra's `groups` claim lists every
    /// group the user is in, through nesting too: a group the user's kept direct groups (or a
    /// group it joins) already lead to through the directory's nesting is not joined again, so
    /// that nesting stays as the directory has it. Deepest groups first, so a group joins
    /// before the groups above it are found covered. A claim of direct groups only adds the
    /// same as before.
    async fn direct_additions(
        &self,
        dir: &str,
        wanted: &BTreeSet<String>,
        current: &BTreeSet<String>,
    ) -> Result<Vec<String>, LoginError> {
        let candidates: Vec<&String> = wanted.difference(current).collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let from: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let mut parents: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (child, parent) in self.store.nesting_above(dir, &from).await? {
            parents.entry(child).or_default().push(parent);
        }
        let above = |g: &str| -> BTreeSet<String> {
            let mut out = BTreeSet::new();
            let mut todo = vec![g.to_string()];
            while let Some(c) = todo.pop() {
                for p in parents.get(&c).into_iter().flatten() {
                    if out.insert(p.clone()) {
                        todo.push(p.clone());
                    }
                }
            }
            out
        };
        let mut covered: BTreeSet<String> = BTreeSet::new();
        for g in wanted.intersection(current) {
            covered.extend(above(g));
        }
        let mut ordered: Vec<(usize, &String, BTreeSet<String>)> = candidates
            .into_iter()
            .map(|g| {
                let a = above(g);
                (a.len(), g, a)
            })
            .collect();
        ordered.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let mut add = Vec::new();
        for (_, g, a) in ordered {
            if covered.contains(g) {
                continue;
            }
            covered.extend(a);
            add.push(g.clone());
        }
        Ok(add)
    }

    /// Queue a run of `flow` for `user` and return where its outcome will be said. Users
    /// queued while a run of the flow is under way share the next run.
    fn run_for_login(self: &Arc<Self>, flow: &str, user: &str) -> oneshot::Receiver<FlowRun> {
        let (tx, rx) = oneshot::channel();
        let queue = self.login_queue(flow);
        if let Ok(mut q) = queue.lock() {
            q.push((user.to_string(), tx));
        }
        let rt = Arc::clone(self);
        let flow = flow.to_string();
        self.login_runs.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            // Counted down however the task ends.
            let _counted = Counted(Arc::clone(&rt));
            let lock = rt.flow_lock(&flow);
            let _running = lock.lock().await;
            let batch: Vec<(String, oneshot::Sender<FlowRun>)> = match queue.lock() {
                Ok(mut q) => std::mem::take(&mut *q),
                Err(_) => Vec::new(),
            };
            if batch.is_empty() {
                // An earlier task took these users into its run.
                return;
            }
            let users: BTreeSet<String> = batch.iter().map(|(u, _)| u.clone()).collect();
            let run = match rt.run_for_users(&flow, users).await {
                Ok(report) => FlowRun::Finished {
                    run_id: report.run_id,
                    status: report.status,
                },
                Err(e @ EngineError::Busy { .. }) => FlowRun::Failed {
                    error: format!("{e}; the login's changes are in the change log and that process's next run applies them"),
                },
                Err(e) => FlowRun::Failed {
                    error: e.to_string(),
                },
            };
            if let FlowRun::Failed { error } = &run {
                tracing::warn!(flow = %flow, users = batch.len(), error = %error, "login run failed");
            }
            for (_, tx) in batch {
                let _ = tx.send(run.clone());
            }
        });
        rx
    }

    /// Run a flow for some users now (trigger `login`), holding its lease. The run starts from
    /// the flow's memory (its directory image brought up to date from the change log, its
    /// ledger when nothing else wrote to it) and leaves it for the next run: a login run does
    /// not read the directory and the ledger whole from the store.
    async fn run_for_users(
        &self,
        flow: &str,
        users: BTreeSet<String>,
    ) -> Result<crate::run::RunReport, EngineError> {
        let entry = self.flow(flow)?;
        let target = self.target_of(entry)?;
        let mut spec = entry.spec.clone();
        spec.only_users = Some(users);
        let ctx = RunContext {
            store: &self.store,
            flow: &spec,
            target: target.target.as_ref(),
            limiter: &target.limiter,
            progress: &NoProgress,
            clock: self.clock.as_ref(),
            served: target.served.then_some(target.name.as_str()),
            stop: self.stop_signal(),
        };
        let opts = RunOptions {
            trigger: Trigger::Login,
            mode: Mode::Incremental,
            dry_run: false,
        };
        let mut memory = self.take_memory(flow);
        let report = self.leased(flow, run_flow(&ctx, opts, &mut memory)).await;
        self.keep_memory(flow, memory);
        report
    }

    /// Wait until every login run started so far has ended (a command that logs a user in
    /// waits for them before it exits; they are never cut short by the login's return).
    pub async fn login_runs_done(&self) {
        let mut rx = self.login_runs.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    fn login_queue(&self, flow: &str) -> Arc<LoginQueue> {
        match self.login_queues.lock() {
            Ok(mut m) => m.entry(flow.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// The lock of a user's logins: one of [`LOGIN_LOCKS`] per directory, by a hash of the
    /// user's id (bounded memory however many users log in; two users rarely share one).
    fn login_lock(&self, dir: &str, subject: &str) -> Arc<tokio::sync::Mutex<()>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        subject.hash(&mut h);
        let key = format!("{dir}\u{0}{}", h.finish() % LOGIN_LOCKS);
        match self.login_locks.lock() {
            Ok(mut m) => m.entry(key).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }
}

/// How many login locks a directory has.
const LOGIN_LOCKS: u64 = 256;

/// Counts a login run down when its task ends.
struct Counted(Arc<Runtime>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.login_runs.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The group names `flow` gives the user after its scope and group rules (what the product
/// receives), from the user's slice of the directory.
fn flow_groups(
    flow: &FlowEntry,
    snapshot: &Snapshot,
    ledger: &idsync_core::LedgerState,
    subject: &str,
) -> Vec<String> {
    let mut desired = desired_state(snapshot);
    apply_scope(&mut desired, &flow.spec.scope);
    apply_group_rules(&mut desired, ledger, &flow.spec.groups);
    let mut names: Vec<String> = desired
        .members
        .iter()
        .filter(|(_, m)| m.contains(subject))
        .filter_map(|(k, _)| desired.groups.get(k))
        .map(|g| g.display_name.clone())
        .collect();
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup();
    names
}
