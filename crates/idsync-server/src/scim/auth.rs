//! Who may call a directory's endpoint: a bearer token of that directory.

use super::*;
use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use idsync_scim::ScimError;
use std::collections::BTreeMap;

pub(super) async fn authenticate(
    State(st): State<ScimState>,
    Path(params): Path<BTreeMap<String, String>>,
    req: Request,
    next: Next,
) -> Result<Response, ScimFailure> {
    let dir = params.get("dir").cloned().unwrap_or_default();
    let secret = crate::auth::bearer(req.headers())
        .unwrap_or_default()
        .to_string();
    if secret.is_empty() {
        return Err(ScimError::unauthorized().into());
    }
    let now = st.svc.runtime.clock.now_ms();
    match st.svc.runtime.store.verify_token(&secret, now).await? {
        Some(token) if token.directory == dir => {
            if req.uri().path().starts_with("/scim/directory/") && st.atlassian(&dir).is_none() {
                return Err(ScimError::not_found(format!(
                    "directory {dir:?} does not behave as Atlassian Cloud: its endpoint is /scim/v2/{dir}"
                ))
                .into());
            }
            Ok(next.run(req).await)
        }
        _ => Err(ScimError::unauthorized().into()),
    }
}
