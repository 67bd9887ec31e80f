//! The connector conformance kit: what every target must do, checked against a live target.
//! Each case returns a [`KitFailure`] naming the expectation and what was seen, so a caller can
//! report every failure at once. Names are prefixed so the kit can run against a target that
//! already holds data.

pub mod peers;

use crate::targets::test::{Fault, TestTarget};
use idsync_core::{Email, Group, Name, Outcome, Target, TargetOp, User};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KitFailure(pub String);

type KitResult = Result<(), KitFailure>;

fn fail<T>(msg: impl Into<String>) -> Result<T, KitFailure> {
    Err(KitFailure(msg.into()))
}

fn user(prefix: &str, n: &str) -> User {
    let mut u = User::new(
        format!("{prefix}-{n}-src"),
        format!("{prefix}.{n}@example.com"),
    );
    u.display_name = Some(format!("{prefix} {n}"));
    u.name = Name {
        given_name: Some(n.to_string()),
        family_name: Some(prefix.to_string()),
        ..Name::default()
    };
    u.emails = vec![Email {
        value: format!("{prefix}.{n}@example.com"),
        kind: Some("work".into()),
        primary: true,
        display: None,
    }];
    u
}

async fn create_user(t: &dyn Target, u: &User) -> Result<String, KitFailure> {
    match t.apply(&TargetOp::CreateUser { user: u.clone() }).await {
        Outcome::Applied {
            target_id: Some(id),
        } => Ok(id),
        other => fail(format!(
            "create user {}: expected Applied with an id, got {other:?}",
            u.user_name
        )),
    }
}

async fn create_group(t: &dyn Target, g: &Group) -> Result<String, KitFailure> {
    match t
        .apply(&TargetOp::CreateGroup {
            group: g.clone(),
            members: Vec::new(),
        })
        .await
    {
        Outcome::Applied {
            target_id: Some(id),
        } => Ok(id),
        other => fail(format!(
            "create group {}: expected Applied with an id, got {other:?}",
            g.display_name
        )),
    }
}

async fn expect_applied(t: &dyn Target, op: TargetOp, what: &str) -> KitResult {
    match t.apply(&op).await {
        Outcome::Applied { .. } => Ok(()),
        other => fail(format!("{what}: expected Applied, got {other:?}")),
    }
}

async fn read_user(t: &dyn Target, id: &str) -> Result<Option<User>, KitFailure> {
    let s = t
        .read_state()
        .await
        .map_err(|e| KitFailure(format!("read_state failed: {e}")))?;
    Ok(s.users
        .into_iter()
        .find(|u| u.target_id == id)
        .map(|u| u.user))
}

async fn members(t: &dyn Target, group_id: &str) -> Result<Vec<String>, KitFailure> {
    let s = t
        .read_state()
        .await
        .map_err(|e| KitFailure(format!("read_state failed: {e}")))?;
    let Some(g) = s.groups.into_iter().find(|g| g.target_id == group_id) else {
        return fail(format!("group {group_id} missing from read_state"));
    };
    let mut m = g.members;
    m.sort();
    Ok(m)
}

fn same_core(want: &User, got: &User) -> Result<(), KitFailure> {
    let check = |what: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            fail(format!("{what} differs: wrote {want:?}, read {got:?}"))
        }
    };
    check(
        "userName",
        want.user_name.eq_ignore_ascii_case(&got.user_name),
    )?;
    check("displayName", want.display_name == got.display_name)?;
    check(
        "name",
        want.name.given_name == got.name.given_name
            && want.name.family_name == got.name.family_name,
    )?;
    check("primary email", want.primary_email() == got.primary_email())?;
    check("active", want.active == got.active)
}

async fn health(t: &dyn Target, _p: &str) -> KitResult {
    t.health()
        .await
        .map_err(|e| KitFailure(format!("health check failed: {e}")))
}

async fn create_and_read_user(t: &dyn Target, p: &str) -> KitResult {
    let u = user(p, "create");
    let id = create_user(t, &u).await?;
    match read_user(t, &id).await? {
        // What the target can hold of what was written (a product without name fields).
        Some(got) => same_core(&t.project_user(u.clone()), &got),
        None => fail(format!("created user {id} is not in read_state")),
    }
}

async fn find_user(t: &dyn Target, p: &str) -> KitResult {
    let u = user(p, "find");
    let id = create_user(t, &u).await?;
    let err = |e| KitFailure(format!("find_user failed: {e}"));
    if t.find_user(&u).await.map_err(err)?.as_deref() != Some(id.as_str()) {
        return fail("find_user by userName did not return the created user");
    }
    let mut by_email = u.clone();
    by_email.user_name = format!("{p}.someone-else@example.com");
    if t.find_user(&by_email).await.map_err(err)?.as_deref() != Some(id.as_str()) {
        return fail("find_user by email (userName differs) did not return the created user");
    }
    let stranger = user(p, "nobody-has-this-name");
    if let Some(found) = t.find_user(&stranger).await.map_err(err)? {
        return fail(format!("find_user of an unknown user returned {found}"));
    }
    Ok(())
}

async fn duplicate_user_rejected(t: &dyn Target, p: &str) -> KitResult {
    let u = user(p, "dup");
    create_user(t, &u).await?;
    match t.apply(&TargetOp::CreateUser { user: u.clone() }).await {
        Outcome::Rejected { .. } => Ok(()),
        other => fail(format!(
            "a second user with the same userName: expected Rejected, got {other:?}"
        )),
    }
}

async fn update_user(t: &dyn Target, p: &str) -> KitResult {
    let u = user(p, "update");
    let id = create_user(t, &u).await?;
    let mut after = u.clone();
    after.display_name = Some("Changed Name".into());
    after.name.family_name = Some("Changed".into());
    expect_applied(
        t,
        TargetOp::UpdateUser {
            target_id: id.clone(),
            before: u.clone(),
            after: after.clone(),
        },
        "update user",
    )
    .await?;
    match read_user(t, &id).await? {
        Some(got) => same_core(&t.project_user(after.clone()), &got),
        None => fail("updated user vanished"),
    }
}

async fn disable_and_enable_user(t: &dyn Target, p: &str) -> KitResult {
    let u = user(p, "disable");
    let id = create_user(t, &u).await?;
    let mut off = u.clone();
    off.active = false;
    expect_applied(
        t,
        TargetOp::UpdateUser {
            target_id: id.clone(),
            before: u.clone(),
            after: off.clone(),
        },
        "disable user",
    )
    .await?;
    if read_user(t, &id).await?.map(|u| u.active) != Some(false) {
        return fail("disabled user still active");
    }
    expect_applied(
        t,
        TargetOp::UpdateUser {
            target_id: id.clone(),
            before: off,
            after: u,
        },
        "re-enable user",
    )
    .await?;
    if read_user(t, &id).await?.map(|u| u.active) != Some(true) {
        return fail("re-enabled user not active");
    }
    Ok(())
}

async fn delete_user(t: &dyn Target, p: &str) -> KitResult {
    let u = user(p, "delete");
    let id = create_user(t, &u).await?;
    expect_applied(
        t,
        TargetOp::DeleteUser {
            target_id: id.clone(),
        },
        "delete user",
    )
    .await?;
    if read_user(t, &id).await?.is_some() {
        return fail("deleted user still in read_state");
    }
    if t.find_user(&u)
        .await
        .map_err(|e| KitFailure(e.to_string()))?
        .is_some()
    {
        return fail("find_user still finds a deleted user");
    }
    match t.apply(&TargetOp::DeleteUser { target_id: id }).await {
        Outcome::NotFound { .. } | Outcome::Applied { .. } => Ok(()),
        other => fail(format!(
            "deleting a deleted user: expected NotFound (or Applied), got {other:?}"
        )),
    }
}

async fn group_lifecycle(t: &dyn Target, p: &str) -> KitResult {
    let g = Group::new(format!("{p}-grp-src"), format!("{p}-group"));
    let id = create_group(t, &g).await?;
    let found = t
        .find_group(&g)
        .await
        .map_err(|e| KitFailure(e.to_string()))?;
    if found.as_deref() != Some(id.as_str()) {
        return fail(format!("find_group returned {found:?}, expected {id}"));
    }
    let mut after = g.clone();
    // A target that says it cannot rename groups (Atlassian Cloud, Jira) is not asked to:
    // the engine keeps such a rename in the plan with a warning instead.
    if t.can_rename_groups() {
        after.display_name = format!("{p}-group-renamed");
    }
    expect_applied(
        t,
        TargetOp::UpdateGroup {
            target_id: id.clone(),
            before: g.clone(),
            after: after.clone(),
        },
        "update group",
    )
    .await?;
    let s = t
        .read_state()
        .await
        .map_err(|e| KitFailure(e.to_string()))?;
    match s.groups.iter().find(|x| x.target_id == id) {
        Some(x) if x.group.display_name == after.display_name => {}
        other => return fail(format!("updated group reads back as {other:?}")),
    }
    expect_applied(
        t,
        TargetOp::DeleteGroup {
            target_id: id.clone(),
        },
        "delete group",
    )
    .await?;
    let s = t
        .read_state()
        .await
        .map_err(|e| KitFailure(e.to_string()))?;
    if s.groups.iter().any(|x| x.target_id == id) {
        return fail("deleted group still in read_state");
    }
    Ok(())
}

async fn memberships(t: &dyn Target, p: &str) -> KitResult {
    let g = create_group(t, &Group::new(format!("{p}-m-src"), format!("{p}-members"))).await?;
    let mut ids = Vec::new();
    for n in ["m1", "m2", "m3", "m4"] {
        ids.push(create_user(t, &user(p, n)).await?);
    }
    expect_applied(
        t,
        TargetOp::AddMembers {
            group_id: g.clone(),
            user_ids: ids.clone(),
        },
        "add 4 members",
    )
    .await?;
    expect_applied(
        t,
        TargetOp::RemoveMembers {
            group_id: g.clone(),
            user_ids: vec![ids[1].clone(), ids[3].clone()],
        },
        "remove 2 members",
    )
    .await?;
    let mut want = vec![ids[0].clone(), ids[2].clone()];
    want.sort();
    let got = members(t, &g).await?;
    if got != want {
        return fail(format!(
            "members after add 4 / remove 2: expected {want:?}, got {got:?}"
        ));
    }
    // Adding an existing member again is harmless.
    expect_applied(
        t,
        TargetOp::AddMembers {
            group_id: g.clone(),
            user_ids: vec![ids[0].clone()],
        },
        "re-add an existing member",
    )
    .await?;
    if members(t, &g).await? != want {
        return fail("re-adding an existing member changed the members");
    }
    Ok(())
}

/// A group created with its first members has them when the create answers (in the create,
/// or added right after it where the service drops members sent in a create).
async fn group_created_with_members(t: &dyn Target, p: &str) -> KitResult {
    let a = create_user(t, &user(p, "c1")).await?;
    let b = create_user(t, &user(p, "c2")).await?;
    let g = Group::new(format!("{p}-c-src"), format!("{p}-created-with"));
    let id = match t
        .apply(&TargetOp::CreateGroup {
            group: g,
            members: vec![a.clone(), b.clone()],
        })
        .await
    {
        Outcome::Applied {
            target_id: Some(id),
        } => id,
        other => return fail(format!("create a group with 2 members: got {other:?}")),
    };
    let mut want = vec![a, b];
    want.sort();
    let got = members(t, &id).await?;
    if got != want {
        return fail(format!(
            "members of a group created with 2: expected {want:?}, got {got:?}"
        ));
    }
    Ok(())
}

async fn unknown_member_rejected(t: &dyn Target, p: &str) -> KitResult {
    let g = create_group(
        t,
        &Group::new(format!("{p}-u-src"), format!("{p}-unknown-member")),
    )
    .await?;
    match t
        .apply(&TargetOp::AddMembers {
            group_id: g,
            user_ids: vec!["no-such-user-id".into()],
        })
        .await
    {
        Outcome::Rejected { .. } | Outcome::NotFound { .. } => Ok(()),
        other => fail(format!(
            "adding an unknown user: expected Rejected or NotFound, got {other:?}"
        )),
    }
}

async fn delete_drops_memberships(t: &dyn Target, p: &str) -> KitResult {
    let g = create_group(t, &Group::new(format!("{p}-d-src"), format!("{p}-drop"))).await?;
    let a = create_user(t, &user(p, "d1")).await?;
    let b = create_user(t, &user(p, "d2")).await?;
    let add = TargetOp::AddMembers {
        group_id: g.clone(),
        user_ids: vec![a.clone(), b.clone()],
    };
    expect_applied(t, add, "add members").await?;
    expect_applied(
        t,
        TargetOp::DeleteUser { target_id: a },
        "delete member user",
    )
    .await?;
    if members(t, &g).await? != vec![b] {
        return fail("a deleted user is still a member");
    }
    Ok(())
}

async fn update_unknown_is_not_found(t: &dyn Target, p: &str) -> KitResult {
    let u = user(p, "ghost");
    match t
        .apply(&TargetOp::UpdateUser {
            target_id: "no-such-id".into(),
            before: u.clone(),
            after: u,
        })
        .await
    {
        Outcome::NotFound { .. } => Ok(()),
        other => fail(format!(
            "updating an unknown id: expected NotFound, got {other:?}"
        )),
    }
}

/// Run every case. Returns each case's name and result.
pub async fn run_all(target: &dyn Target, prefix: &str) -> Vec<(&'static str, KitResult)> {
    let mut out = Vec::new();
    macro_rules! case {
        ($($name:ident),* $(,)?) => {
            $( out.push((stringify!($name), $name(target, &format!("{prefix}-{}", stringify!($name).replace('_', "-"))).await)); )*
        };
    }
    case!(
        health,
        create_and_read_user,
        find_user,
        duplicate_user_rejected,
        update_user,
        disable_and_enable_user,
        delete_user,
        group_lifecycle,
        memberships,
        group_created_with_members,
        update_unknown_is_not_found,
    );
    out
}

/// The scriptable target's own cases: its strictness, and fault injection (each fault yields
/// the right class of outcome).
pub async fn fault_cases(t: &TestTarget) -> Vec<(&'static str, KitResult)> {
    let mut out: Vec<(&'static str, KitResult)> = Vec::new();
    // The strictness of a real application, which not every SCIM service has.
    out.push(("unknown member", unknown_member_rejected(t, "strict").await));
    out.push((
        "delete drops memberships",
        delete_drops_memberships(t, "strict").await,
    ));
    let op = |n: &str| TargetOp::CreateUser {
        user: user("fault", n),
    };

    t.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after: Duration::from_millis(1500),
        },
    );
    out.push((
        "429",
        match t.apply(&op("a")).await {
            Outcome::Retryable {
                retry_after: Some(d),
                ..
            } if d == Duration::from_millis(1500) => Ok(()),
            other => fail(format!(
                "expected Retryable with Retry-After 1.5s, got {other:?}"
            )),
        },
    ));
    t.fail_next(1, Fault::ServerError(502));
    out.push((
        "5xx",
        match t.apply(&op("b")).await {
            Outcome::Retryable {
                reason,
                retry_after: None,
            } if reason.contains("502") => Ok(()),
            other => fail(format!("expected Retryable HTTP 502, got {other:?}")),
        },
    ));
    t.fail_next(1, Fault::Timeout(Duration::from_millis(5)));
    let before = t.user_count();
    out.push((
        "timeout",
        match t.apply(&op("c")).await {
            Outcome::Retryable { .. } if t.user_count() == before => Ok(()),
            other => fail(format!(
                "expected Retryable without applying, got {other:?} (users {before} -> {})",
                t.user_count()
            )),
        },
    ));
    t.fail_next(1, Fault::TimeoutAfterApply);
    out.push((
        "timeout after apply",
        match t.apply(&op("d")).await {
            Outcome::Retryable { .. } if t.users_named("fault.d@example.com") == 1 => Ok(()),
            other => fail(format!(
                "expected Retryable with the user created, got {other:?}"
            )),
        },
    ));
    t.fail_next(1, Fault::Permanent("forbidden".into()));
    out.push((
        "permanent",
        match t.apply(&op("e")).await {
            Outcome::Rejected { reason } if reason == "forbidden" => Ok(()),
            other => fail(format!("expected Rejected, got {other:?}")),
        },
    ));
    t.fail_next(1, Fault::Unavailable);
    let h = t.health().await;
    let r = t.read_state().await;
    let a = t.apply(&op("f")).await;
    out.push((
        "unavailable",
        match (h, r, a) {
            (Err(_), Err(_), Outcome::Retryable { .. }) => Ok(()),
            other => fail(format!(
                "expected health and read_state to fail and apply to be Retryable, got {other:?}"
            )),
        },
    ));
    out.push((
        "recovers",
        match (t.health().await, t.apply(&op("g")).await) {
            (Ok(()), Outcome::Applied { .. }) => Ok(()),
            other => fail(format!("expected the target to work again, got {other:?}")),
        },
    ));
    out
}
