//! /Users: read, create, replace, patch, delete, and the users a filter selects.

use super::*;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use idsync_core::Change;
use idsync_scim::filter::{AttrPath, Filter};
use idsync_scim::patch::{apply, parse_request};
use idsync_scim::resource::{user_from_scim, user_to_scim};
use idsync_scim::schema::USER_RESOURCE;
use idsync_scim::ScimError;
use idsync_store::{StoredUser, Unique};
use serde_json::Value;

/// A user as served: the stored user and the groups it is a direct member of.
pub(super) struct UserView {
    su: StoredUser,
    groups: Vec<(String, String)>,
}

impl UserView {
    fn json(&self, base: &str) -> (Value, String) {
        with_version(user_to_scim(
            &self.su.user,
            base,
            &self.groups,
            &meta(self.su.created_ms, self.su.modified_ms),
        ))
    }
}

pub(super) async fn load_user_view(
    st: &ScimState,
    dir: &str,
    id: &str,
) -> Result<UserView, ScimFailure> {
    let su = load_user(st, dir, id).await?;
    let groups = st
        .svc
        .runtime
        .store
        .member_of(dir, &su.user.source_id)
        .await?;
    Ok(UserView { su, groups })
}

pub(super) async fn load_user(
    st: &ScimState,
    dir: &str,
    id: &str,
) -> Result<StoredUser, ScimFailure> {
    st.svc
        .runtime
        .store
        .get_user(dir, id)
        .await?
        .ok_or_else(|| ScimFailure(ScimError::not_found(format!("no user with id {id}"))))
}

/// Every user matching the request's filter, as SCIM resources.
pub(super) async fn search_users(
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
    // Equality on an indexed attribute narrows the candidates; the filter still decides.
    let top = |name: &str, path: &AttrPath| {
        path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case(name)
    };
    let candidates = match filter.as_ref().and_then(Filter::eq_value) {
        Some((path, v)) if top("userName", path) => store.find_users_by_name(&dir, v).await?,
        Some((path, v)) if top("id", path) => store.get_user(&dir, v).await?.into_iter().collect(),
        Some((path, v)) if top("externalId", path) => {
            store.find_users_by_external_id(&dir, v).await?
        }
        Some((path, v))
            if path.urn.is_none()
                && path.name.eq_ignore_ascii_case("emails")
                && path
                    .sub
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case("value")) =>
        {
            store.find_users_by_email(&dir, v).await?
        }
        _ => store.list_users(&dir).await?,
    };
    // Group memberships are looked up only when the filter could test them.
    let wants_groups = p
        .filter
        .as_deref()
        .is_some_and(|f| f.to_ascii_lowercase().contains("groups"));
    let mut views = Vec::with_capacity(candidates.len());
    for su in candidates {
        let groups = if wants_groups {
            store.member_of(&dir, &su.user.source_id).await?
        } else {
            Vec::new()
        };
        views.push(UserView { su, groups });
    }
    // Serving and testing every user is CPU work: off the runtime's threads.
    Ok(off_runtime(views.len() > INLINE_RESOURCES_MAX, move || {
        Ok(views
            .iter()
            .map(|view| view.json(&base).0)
            .filter(|v| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.matches(v, &|p| USER_RESOURCE.case_exact(p)))
            })
            .collect())
    })
    .await?)
}

pub(super) async fn get_user(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(p): Query<Projection>,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let (v, version) = load_user_view(&st, &dir, &id).await?.json(&base);
    Ok(scim_json(
        StatusCode::OK,
        &project_one(v, &p),
        Some(&version),
        None,
    ))
}

pub(super) async fn create_user(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let id = new_id();
    let user = off_runtime(body.len() > INLINE_BODY_MAX, {
        let id = id.clone();
        move || user_from_scim(&parse_body(&body)?, &id)
    })
    .await?;
    st.check_domain(&dir, &user)?;
    let check = Unique::UserName {
        name: user.user_name.clone(),
        except: None,
    };
    let now = st.now();
    let served = user.clone();
    st.svc
        .runtime
        .store
        .write_checked(&dir, "scim", &[check], &[Change::UpsertUser { user }], now)
        .await?;
    st.written(&dir);
    // What was written is what is served: a new user belongs to no group yet.
    let view = UserView {
        su: StoredUser {
            user: served,
            created_ms: now,
            modified_ms: now,
        },
        groups: Vec::new(),
    };
    let (v, version) = view.json(&base);
    Ok(scim_json(
        StatusCode::CREATED,
        &v,
        Some(&version),
        Some(&format!("{base}/Users/{id}")),
    ))
}

/// Write a replaced user and serve it as written (its groups do not change through /Users).
pub(super) async fn save_user(
    st: &ScimState,
    dir: &str,
    base: &str,
    current: UserView,
    mut user: idsync_core::User,
) -> ScimResult {
    st.check_domain(dir, &user)?;
    let check = Unique::UserName {
        name: user.user_name.clone(),
        except: Some(current.su.user.source_id.clone()),
    };
    user.id.clone_from(&current.su.user.id);
    let changed = user != current.su.user;
    let now = st.now();
    st.svc
        .runtime
        .store
        .write_checked(
            dir,
            "scim",
            &[check],
            &[Change::UpsertUser { user: user.clone() }],
            now,
        )
        .await?;
    st.written(dir);
    let (created_ms, modified_ms) = stamps(
        Some((current.su.created_ms, current.su.modified_ms)),
        changed,
        now,
    );
    let view = UserView {
        su: StoredUser {
            user,
            created_ms,
            modified_ms,
        },
        groups: current.groups,
    };
    let (v, version) = view.json(base);
    Ok(scim_json(StatusCode::OK, &v, Some(&version), None))
}

pub(super) async fn replace_user(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let current = load_user_view(&st, &dir, &id).await?;
    check_if_match(&headers, &current.json(&base).1)?;
    let user = off_runtime(body.len() > INLINE_BODY_MAX, {
        let id = id.clone();
        move || user_from_scim(&parse_body(&body)?, &id)
    })
    .await?;
    save_user(&st, &dir, &base, current, user).await
}

pub(super) async fn patch_user(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let current = load_user_view(&st, &dir, &id).await?;
    let (mut v, version) = current.json(&base);
    check_if_match(&headers, &version)?;
    let source_id = id.clone();
    let user = off_runtime(body.len() > INLINE_BODY_MAX, move || {
        let ops = parse_request(&parse_body(&body)?)?;
        apply(&mut v, &ops, &USER_RESOURCE)?;
        user_from_scim(&strip_read_only(v), &source_id)
    })
    .await?;
    save_user(&st, &dir, &base, current, user).await
}

pub(super) async fn delete_user(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let version = load_user_view(&st, &dir, &id).await?.json(&base).1;
    delete_resource(
        &st,
        &dir,
        &headers,
        &version,
        Change::DeleteUser { source_id: id },
    )
    .await
}
