//! /Groups: read, create, replace, patch (member-only patches without reading the group),
//! delete, and the groups a filter selects.

use super::*;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use idsync_core::{Change, MemberKind, MemberRef};
use idsync_scim::filter::Filter;
use idsync_scim::patch::{apply, member_changes, parse_request};
use idsync_scim::resource::{group_from_scim, group_to_scim, MemberView};
use idsync_scim::schema::GROUP_RESOURCE;
use idsync_scim::ScimError;
use idsync_store::{MemberPatch, StoredGroup, Unique};
use serde_json::Value;
use std::collections::BTreeSet;

/// A group as served: the stored group and its direct members (in the store's order: users
/// first, then by id, as `BTreeSet<MemberRef>` orders them too).
pub(super) struct GroupView {
    sg: StoredGroup,
    members: BTreeSet<MemberRef>,
}

impl GroupView {
    fn json(&self, base: &str) -> (Value, String) {
        group_json(&self.sg, base, Some(&self.members))
    }
}

/// A group as served, with its members or (`excludedAttributes=members`) without.
pub(super) fn group_json(
    sg: &StoredGroup,
    base: &str,
    members: Option<&BTreeSet<MemberRef>>,
) -> (Value, String) {
    let members: Option<Vec<MemberView>> = members.map(|ms| {
        ms.iter()
            .map(|m| MemberView {
                member: m.clone(),
                display: None,
            })
            .collect()
    });
    with_version(group_to_scim(
        &sg.group,
        base,
        members.as_deref(),
        &meta(sg.created_ms, sg.modified_ms),
    ))
}

/// The members of a group, unless the request excludes them.
pub(super) async fn members_unless_excluded(
    st: &ScimState,
    dir: &str,
    sg: &StoredGroup,
    excluded: &Option<String>,
) -> Result<Option<BTreeSet<MemberRef>>, ScimFailure> {
    if split_list(excluded)
        .iter()
        .any(|a| a.eq_ignore_ascii_case("members"))
    {
        return Ok(None);
    }
    let members = st
        .svc
        .runtime
        .store
        .group_members(dir, &sg.group.source_id)
        .await?;
    Ok(Some(members.into_iter().collect()))
}

pub(super) async fn load_group_view(
    st: &ScimState,
    dir: &str,
    id: &str,
) -> Result<GroupView, ScimFailure> {
    let sg = load_group(st, dir, id).await?;
    let members = st
        .svc
        .runtime
        .store
        .group_members(dir, id)
        .await?
        .into_iter()
        .collect();
    Ok(GroupView { sg, members })
}

pub(super) async fn load_group(
    st: &ScimState,
    dir: &str,
    id: &str,
) -> Result<StoredGroup, ScimFailure> {
    st.svc
        .runtime
        .store
        .get_group(dir, id)
        .await?
        .ok_or_else(|| ScimFailure(ScimError::not_found(format!("no group with id {id}"))))
}

/// Every group matching the request's filter, as SCIM resources.
pub(super) async fn search_groups(
    st: &ScimState,
    dir: &str,
    headers: &HeaderMap,
    p: &ListParams,
) -> Result<Vec<Value>, ScimFailure> {
    let base = st.base(headers, dir);
    let dir = dir.to_string();
    let store = &st.svc.runtime.store;
    let filter = p
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(Filter::parse)
        .transpose()?;
    let candidates = match filter.as_ref().and_then(Filter::simple_eq) {
        Some((path, v)) if path.urn.is_none() && path.name.eq_ignore_ascii_case("displayName") => {
            store.find_groups_by_name(&dir, v).await?
        }
        Some((path, v)) if path.urn.is_none() && path.name.eq_ignore_ascii_case("id") => {
            store.get_group(&dir, v).await?.into_iter().collect()
        }
        _ => store.list_groups(&dir).await?,
    };
    let mut items = Vec::with_capacity(candidates.len());
    for sg in candidates {
        let members = members_unless_excluded(st, &dir, &sg, &p.excluded_attributes).await?;
        items.push((sg, members));
    }
    // Serving and testing every group (with its members) is CPU work: off the runtime's
    // threads.
    Ok(off_runtime(items.len() > INLINE_RESOURCES_MAX, move || {
        Ok(items
            .iter()
            .map(|(sg, members)| group_json(sg, &base, members.as_ref()).0)
            .filter(|v| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.matches(v, &|p| GROUP_RESOURCE.case_exact(p)))
            })
            .collect())
    })
    .await?)
}

pub(super) async fn get_group(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(p): Query<Projection>,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let sg = load_group(&st, &dir, &id).await?;
    let members = members_unless_excluded(&st, &dir, &sg, &p.excluded_attributes).await?;
    let (v, version) = group_json(&sg, &base, members.as_ref());
    Ok(scim_json(
        StatusCode::OK,
        &project_one(v, &p),
        Some(&version),
        None,
    ))
}

/// Resolve requested members to users or groups of the directory; unknown ids are refused.
pub(super) async fn resolve_members(
    st: &ScimState,
    dir: &str,
    group_id: &str,
    requested: &[(String, Option<MemberKind>)],
    have: &BTreeSet<MemberRef>,
) -> Result<BTreeSet<MemberRef>, ScimFailure> {
    let existing: std::collections::HashMap<&str, &MemberRef> =
        have.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut out = BTreeSet::new();
    // Members the group already has are known to exist: only new ones are looked up, together.
    let mut unknown: Vec<(String, Option<MemberKind>)> = Vec::new();
    for (id, kind) in requested {
        match existing
            .get(id.as_str())
            .filter(|m| kind.is_none_or(|k| k == m.kind))
        {
            Some(m) => {
                out.insert((*m).clone());
            }
            None => unknown.push((id.clone(), *kind)),
        }
    }
    if unknown.is_empty() {
        return Ok(out);
    }
    let ids: Vec<&str> = unknown.iter().map(|(id, _)| id.as_str()).collect();
    let kinds = st.svc.runtime.store.kinds_of(dir, &ids).await?;
    out.extend(resolve_known(&kinds, group_id, &unknown)?);
    Ok(out)
}

/// Requested members as users or groups, by what the directory says each id is.
pub(super) fn resolve_known(
    kinds: &std::collections::HashMap<String, MemberKind>,
    group_id: &str,
    requested: &[(String, Option<MemberKind>)],
) -> Result<BTreeSet<MemberRef>, ScimFailure> {
    let mut out = BTreeSet::new();
    for (id, asked) in requested {
        let found = kinds
            .get(id)
            .copied()
            .filter(|k| asked.is_none_or(|a| a == *k))
            .filter(|k| !(*k == MemberKind::Group && id == group_id));
        let Some(kind) = found else {
            return Err(ScimError::invalid_value(format!(
                "members: no {} with id {id}",
                asked.unwrap_or(MemberKind::Group).as_str()
            ))
            .into());
        };
        out.insert(MemberRef {
            kind,
            id: id.clone(),
        });
    }
    Ok(out)
}

/// Write a new or replaced group with its members, and serve it as written. `current` is
/// `None` for a create.
pub(super) async fn save_group(
    st: &ScimState,
    dir: &str,
    base: &str,
    current: Option<GroupView>,
    mut group: idsync_core::Group,
    want: BTreeSet<MemberRef>,
) -> ScimResult {
    let id = group.source_id.clone();
    let creating = current.is_none();
    let check = Unique::GroupName {
        name: group.display_name.clone(),
        except: (!creating).then(|| id.clone()),
    };
    let (before, have) = match current {
        Some(c) => {
            if st.atlassian(dir).is_some() && c.sg.group.display_name != group.display_name {
                return Err(ScimError::mutability(format!(
                    "group {:?} cannot be renamed {:?}: Atlassian Cloud does not support group renames",
                    c.sg.group.display_name, group.display_name
                ))
                .into());
            }
            group.id.clone_from(&c.sg.group.id);
            // A change of members is a change of the group: meta.lastModified moves.
            let changed = group != c.sg.group || c.members != want;
            (
                Some(((c.sg.created_ms, c.sg.modified_ms), changed)),
                c.members,
            )
        }
        None => (None, BTreeSet::new()),
    };
    let mut changes = vec![Change::UpsertGroup {
        group: group.clone(),
    }];
    changes.extend(have.difference(&want).map(|m| Change::RemoveMember {
        group: id.clone(),
        member: m.clone(),
    }));
    changes.extend(want.difference(&have).map(|m| Change::AddMember {
        group: id.clone(),
        member: m.clone(),
    }));
    let now = st.now();
    st.svc
        .runtime
        .store
        .write_checked(dir, "scim", &[check], &changes, now)
        .await?;
    st.written(dir);
    let (created_ms, modified_ms) = stamps(
        before.map(|(s, _)| s),
        before.is_some_and(|(_, changed)| changed),
        now,
    );
    let view = GroupView {
        sg: StoredGroup {
            group,
            created_ms,
            modified_ms,
        },
        members: want,
    };
    let (v, version) = view.json(base);
    let (status, location) = if creating {
        (StatusCode::CREATED, Some(format!("{base}/Groups/{id}")))
    } else {
        (StatusCode::OK, None)
    };
    Ok(scim_json(status, &v, Some(&version), location.as_deref()))
}

pub(super) async fn create_group(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let id = new_id();
    let (group, requested) = off_runtime(body.len() > INLINE_BODY_MAX, {
        let id = id.clone();
        move || group_from_scim(&parse_body(&body)?, &id)
    })
    .await?;
    let want = resolve_members(&st, &dir, &id, &requested, &BTreeSet::new()).await?;
    save_group(&st, &dir, &base, None, group, want).await
}

pub(super) async fn replace_group(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let current = load_group_view(&st, &dir, &id).await?;
    check_if_match(&headers, &current.json(&base).1)?;
    let (group, requested) = off_runtime(body.len() > INLINE_BODY_MAX, {
        let id = id.clone();
        move || group_from_scim(&parse_body(&body)?, &id)
    })
    .await?;
    let want = resolve_members(&st, &dir, &id, &requested, &current.members).await?;
    save_group(&st, &dir, &base, Some(current), group, want).await
}

pub(super) async fn patch_group(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let large = body.len() > INLINE_BODY_MAX;
    let ops = Arc::new(off_runtime(large, move || parse_request(&parse_body(&body)?)).await?);
    // Adding and removing members (what identity providers send) touches only those members:
    // no read of the whole group, and 204 No Content as Entra expects. With If-Match the
    // group's version must be computed, so the general path runs.
    if headers.get(header::IF_MATCH).is_none() {
        if let Some(members) = member_changes(&ops) {
            return patch_members(&st, &dir, &id, &members).await;
        }
    }
    let current = load_group_view(&st, &dir, &id).await?;
    let (v, version) = current.json(&base);
    check_if_match(&headers, &version)?;
    let source_id = id.clone();
    let heavy = large || current.members.len() > INLINE_RESOURCES_MAX;
    let (group, requested) = off_runtime(heavy, move || {
        let mut v = v;
        apply(&mut v, &ops, &GROUP_RESOURCE)?;
        group_from_scim(&strip_read_only(v), &source_id)
    })
    .await?;
    let want = resolve_members(&st, &dir, &id, &requested, &current.members).await?;
    save_group(&st, &dir, &base, Some(current), group, want).await
}

/// A PATCH that only adds and removes members, applied without reading the group: the
/// store's writer decides what each member is as it writes (see `MemberPatch`).
pub(super) async fn patch_members(
    st: &ScimState,
    dir: &str,
    id: &str,
    members: &[(bool, String)],
) -> ScimResult {
    let patch = MemberPatch {
        group: id.to_string(),
        ops: members.to_vec(),
    };
    st.svc
        .runtime
        .store
        .patch_members(dir, "scim", patch, st.now())
        .await?;
    st.written(dir);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn delete_group(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let version = load_group_view(&st, &dir, &id).await?.json(&base).1;
    delete_resource(
        &st,
        &dir,
        &headers,
        &version,
        Change::DeleteGroup { source_id: id },
    )
    .await
}

/// DELETE of a user or group whose current version is `version`: gone, once the request's
/// If-Match (if any) holds.
pub(super) async fn delete_resource(
    st: &ScimState,
    dir: &str,
    headers: &HeaderMap,
    version: &str,
    change: Change,
) -> ScimResult {
    check_if_match(headers, version)?;
    st.svc
        .runtime
        .store
        .write_checked(dir, "scim", &[], &[change], st.now())
        .await?;
    st.written(dir);
    Ok(StatusCode::NO_CONTENT.into_response())
}
