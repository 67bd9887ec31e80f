//! The request handler: one Crowd REST request against a [`Directory`] and an [`EventLog`].
//!
//! Reads are answered from the directory; every write (users, groups, memberships, attributes,
//! passwords, renames, password-reset mails) is refused with 403 `APPLICATION_PERMISSION_DENIED`
//! as Crowd refuses an application whose directory does not allow the operation: the directory
//! is read-only, idsync serves it from its source. A user's password is never checked: idsync
//! holds none (`authentication` answers `INVALID_USER_AUTHENTICATION`), and SSO sessions are not
//! offered (`session` answers as Crowd does to a token it does not know). Web hooks are not
//! offered either: `webhook` answers 404, as a Crowd without them, which `RestCrowdClient` takes
//! for "use the event feed".

mod params;

use crate::error::{CrowdError, ErrorReason};
use crate::model::CrowdUser;
use crate::render::{self, Detail, Out, Owner};
use crate::restriction::{self, bad, EntityType, Restriction};
use crate::url::decode;
use crate::{Directory, EventLog, Format, Request, Response};
use params::{page, Params};

/// Everything one request needs.
struct Ctx<'a> {
    req: &'a Request<'a>,
    dir: &'a Directory,
    events: &'a EventLog,
    params: Params<'a>,
    out: Out<'a>,
}

/// The answer to one request. Never panics; never answers 5xx for anything in the request.
pub fn handle(req: &Request, dir: &Directory, events: &EventLog) -> Response {
    let ctx = Ctx {
        req,
        dir,
        events,
        params: Params { query: req.query },
        out: Out {
            base: req.base_url.trim_end_matches('/'),
            format: req.accept,
        },
    };
    match route(&ctx) {
        Ok(r) => r,
        Err(e) => e.response(req.accept),
    }
}

fn ok(out: &Out<'_>, body: Vec<u8>) -> Result<Response, CrowdError> {
    Ok(Response::new(200, out.format, body))
}

fn empty(status: u16, format: Format) -> Response {
    Response::new(status, format, Vec::new())
}

fn user_not_found(name: &str) -> CrowdError {
    CrowdError::new(
        404,
        ErrorReason::UserNotFound,
        format!("User <{name}> does not exist"),
    )
}

fn group_not_found(name: &str) -> CrowdError {
    CrowdError::new(
        404,
        ErrorReason::GroupNotFound,
        format!("Group <{name}> does not exist"),
    )
}

fn membership_not_found(child: &str, parent: &str) -> CrowdError {
    CrowdError::new(
        404,
        ErrorReason::MembershipNotFound,
        format!("The child entity <{child}> is not a member of the parent <{parent}>"),
    )
}

/// Crowd's answer to a write the directory does not allow.
fn read_only(what: &str) -> CrowdError {
    CrowdError::new(
        403,
        ErrorReason::ApplicationPermissionDenied,
        format!(
            "The directory is read-only: it does not allow {what} (idsync serves it from its source)"
        ),
    )
}

/// The write a method on a path would be, if it is one.
fn write_of(method: &str, path: &str) -> Option<&'static str> {
    Some(match (method, path) {
        ("POST", "user") => "adding users",
        ("PUT", "user") => "updating users",
        ("DELETE", "user") => "removing users",
        ("POST", "user/rename") => "renaming users",
        ("PUT" | "POST" | "DELETE", "user/password") => "changing passwords",
        ("POST" | "PUT" | "DELETE", "user/attribute") => "changing user attributes",
        ("POST" | "DELETE", "user/group/direct") => "changing memberships",
        ("POST", "user/mail/password") => "password reset mails",
        ("POST", "user/mail/usernames") => "user name reminder mails",
        ("POST", "user/expire-all-passwords") => "expiring passwords",
        ("POST", "group") => "adding groups",
        ("PUT", "group") => "updating groups",
        ("DELETE", "group") => "removing groups",
        ("POST" | "PUT" | "DELETE", "group/attribute") => "changing group attributes",
        ("POST" | "DELETE", "group/user/direct") => "changing memberships",
        ("POST" | "DELETE", "group/child-group/direct" | "group/parent-group/direct") => {
            "changing group memberships"
        }
        _ => return None,
    })
}

/// Paths served for some method (a known path asked with another method answers 405).
const KNOWN: &[&str] = &[
    "user",
    "user/attribute",
    "user/password",
    "user/rename",
    "user/group/direct",
    "user/group/nested",
    "user/mail/password",
    "user/mail/usernames",
    "user/expire-all-passwords",
    "group",
    "group/attribute",
    "group/user/direct",
    "group/user/nested",
    "group/child-group/direct",
    "group/child-group/nested",
    "group/parent-group/direct",
    "group/parent-group/nested",
    "group/membership",
    "search",
    "event",
    "authentication",
    "authentication/notify",
    "session",
    "config/cookie",
];

fn route(ctx: &Ctx<'_>) -> Result<Response, CrowdError> {
    let path = decode(ctx.req.path);
    let path = path.trim_matches('/');
    let method = ctx.req.method.to_ascii_uppercase();
    let method = method.as_str();
    if let Some(what) = write_of(method, path) {
        return Err(read_only(what));
    }
    let f = ctx.req.accept;
    match (method, path) {
        ("GET", "user") => get_user(ctx),
        ("GET", "user/attribute") => {
            let name = ctx.params.required("username")?;
            let u = ctx.dir.user(name).ok_or_else(|| user_not_found(name))?;
            ok(
                &ctx.out,
                ctx.out.attributes(Owner::User(&u.name), &u.attributes),
            )
        }
        ("GET", "user/group/direct") => user_groups(ctx, false),
        ("GET", "user/group/nested") => user_groups(ctx, true),
        ("GET", "group") => {
            let name = ctx.params.required("groupname")?;
            let g = ctx.dir.group(name).ok_or_else(|| group_not_found(name))?;
            ok(&ctx.out, ctx.out.group(g, attributes_detail(ctx)))
        }
        ("GET", "group/attribute") => {
            let name = ctx.params.required("groupname")?;
            let g = ctx.dir.group(name).ok_or_else(|| group_not_found(name))?;
            ok(
                &ctx.out,
                ctx.out.attributes(Owner::Group(&g.name), &g.attributes),
            )
        }
        ("GET", "group/user/direct") => group_users(ctx, false),
        ("GET", "group/user/nested") => group_users(ctx, true),
        ("GET", "group/child-group/direct") => related_groups(ctx, Relation::Child, false),
        ("GET", "group/child-group/nested") => related_groups(ctx, Relation::Child, true),
        ("GET", "group/parent-group/direct") => related_groups(ctx, Relation::Parent, false),
        ("GET", "group/parent-group/nested") => related_groups(ctx, Relation::Parent, true),
        // Crowd serves every membership in XML only.
        ("GET", "group/membership") => Ok(Response::new(
            200,
            Format::Xml,
            render::memberships(ctx.dir),
        )),
        ("GET", "search") => {
            let restriction =
                restriction::parse_query(ctx.params.get("restriction").unwrap_or(""))?;
            search(ctx, &restriction)
        }
        ("POST", "search") => {
            let restriction = restriction::parse_body(ctx.req.body, ctx.req.content_type)?;
            search(ctx, &restriction)
        }
        ("GET", "event") => Ok(Response::new(
            200,
            f,
            render::current_token(f, &ctx.events.current_token()),
        )),
        ("GET", p) if p.starts_with("event/") => {
            let token = p.get("event/".len()..).unwrap_or("");
            let since = ctx.events.since(token)?;
            ok(
                &ctx.out,
                ctx.out.events(ctx.dir, &since.new_token, since.events),
            )
        }
        ("GET", "config/cookie") => ok(&ctx.out, ctx.out.cookie_config()),
        ("POST", "authentication") => {
            let name = ctx.params.required("username")?;
            match ctx.dir.user(name) {
                None => Err(CrowdError::new(
                    400,
                    ErrorReason::UserNotFound,
                    format!("User <{name}> does not exist"),
                )),
                Some(_) => Err(CrowdError::new(
                    400,
                    ErrorReason::InvalidUserAuthentication,
                    "Failed to authenticate principal, password was invalid",
                )),
            }
        }
        ("POST", "authentication/notify") => {
            let name = ctx.params.required("username")?;
            match ctx.dir.user(name) {
                None => Err(CrowdError::new(
                    400,
                    ErrorReason::UserNotFound,
                    format!("User <{name}> does not exist"),
                )),
                Some(u) if !u.active => Err(CrowdError::new(
                    400,
                    ErrorReason::InactiveAccount,
                    format!("Account with name <{}> is inactive", u.name),
                )),
                Some(u) => ok(&ctx.out, ctx.out.user(u, Detail::Full)),
            }
        }
        ("POST", "session") => {
            if ctx
                .params
                .get("validate-password")
                .is_some_and(|v| v.eq_ignore_ascii_case("false"))
            {
                Err(CrowdError::new(
                    403,
                    ErrorReason::ApplicationAccessDenied,
                    "SSO sessions are not offered: log in through the product's own SSO",
                ))
            } else {
                Err(CrowdError::new(
                    400,
                    ErrorReason::InvalidUserAuthentication,
                    "Failed to authenticate principal, password was invalid",
                ))
            }
        }
        ("GET" | "POST", p) if p.starts_with("session/") => Err(CrowdError::new(
            404,
            ErrorReason::InvalidSsoToken,
            "Token does not validate: SSO sessions are not offered",
        )),
        ("DELETE", "session") => Ok(empty(204, f)),
        ("DELETE", p) if p.starts_with("session/") => Ok(empty(204, f)),
        (_, p) if KNOWN.contains(&p) || p.starts_with("event/") || p.starts_with("session/") => {
            Ok(empty(405, f))
        }
        _ => Ok(empty(404, f)),
    }
}

fn attributes_detail(ctx: &Ctx<'_>) -> Detail {
    if ctx.params.expands("attributes") {
        Detail::WithAttributes
    } else {
        Detail::Full
    }
}

/// The detail of the entries of a list: `expand=user` (or `group`) shows them whole, with
/// `attributes` their attributes too.
fn list_detail(ctx: &Ctx<'_>, entity: &str) -> Detail {
    if !ctx.params.expands(entity) {
        Detail::Minimal
    } else if ctx.params.expands("attributes") {
        Detail::WithAttributes
    } else {
        Detail::Full
    }
}

fn get_user(ctx: &Ctx<'_>) -> Result<Response, CrowdError> {
    let user: &CrowdUser = match (ctx.params.get("username"), ctx.params.get("key")) {
        (Some(name), _) => ctx.dir.user(name).ok_or_else(|| user_not_found(name))?,
        (None, Some(key)) => ctx.dir.user_by_key(key).ok_or_else(|| {
            CrowdError::new(
                404,
                ErrorReason::UserNotFound,
                format!("User with external id <{key}> does not exist"),
            )
        })?,
        (None, None) => return Err(bad("username query parameter must be given")),
    };
    ok(&ctx.out, ctx.out.user(user, attributes_detail(ctx)))
}

fn user_groups(ctx: &Ctx<'_>, nested: bool) -> Result<Response, CrowdError> {
    let name = ctx.params.required("username")?;
    let groups = if nested {
        ctx.dir.user_groups_nested(name)
    } else {
        ctx.dir.user_groups_direct(name)
    }
    .ok_or_else(|| user_not_found(name))?;
    if let Some(wanted) = ctx.params.non_empty("groupname") {
        let g = groups
            .iter()
            .find(|g| crate::directory::fold(&g.name) == crate::directory::fold(wanted))
            .ok_or_else(|| membership_not_found(name, wanted))?;
        return ok(&ctx.out, ctx.out.group(g, Detail::Full));
    }
    let (start, max) = ctx.params.page()?;
    ok(
        &ctx.out,
        ctx.out
            .groups(&page(&groups, start, max), list_detail(ctx, "group")),
    )
}

fn group_users(ctx: &Ctx<'_>, nested: bool) -> Result<Response, CrowdError> {
    let name = ctx.params.required("groupname")?;
    let users = if nested {
        ctx.dir.group_users_nested(name)
    } else {
        ctx.dir.group_users_direct(name)
    }
    .ok_or_else(|| group_not_found(name))?;
    if let Some(wanted) = ctx.params.non_empty("username") {
        let u = users
            .iter()
            .find(|u| crate::directory::fold(&u.name) == crate::directory::fold(wanted))
            .ok_or_else(|| membership_not_found(wanted, name))?;
        return ok(&ctx.out, ctx.out.user(u, Detail::Full));
    }
    let (start, max) = ctx.params.page()?;
    ok(
        &ctx.out,
        ctx.out
            .users(&page(&users, start, max), list_detail(ctx, "user")),
    )
}

#[derive(Clone, Copy)]
enum Relation {
    Child,
    Parent,
}

fn related_groups(ctx: &Ctx<'_>, relation: Relation, nested: bool) -> Result<Response, CrowdError> {
    let name = ctx.params.required("groupname")?;
    let (groups, single) = match (relation, nested) {
        (Relation::Child, false) => (ctx.dir.child_groups_direct(name), "child-groupname"),
        (Relation::Child, true) => (ctx.dir.child_groups_nested(name), "child-groupname"),
        (Relation::Parent, false) => (ctx.dir.parent_groups_direct(name), "parent-groupname"),
        (Relation::Parent, true) => (ctx.dir.parent_groups_nested(name), "parent-groupname"),
    };
    let groups = groups.ok_or_else(|| group_not_found(name))?;
    if let Some(wanted) = ctx.params.non_empty(single) {
        let g = groups
            .iter()
            .find(|g| crate::directory::fold(&g.name) == crate::directory::fold(wanted))
            .ok_or_else(|| match relation {
                Relation::Child => membership_not_found(wanted, name),
                Relation::Parent => membership_not_found(name, wanted),
            })?;
        return ok(&ctx.out, ctx.out.group(g, Detail::Full));
    }
    let (start, max) = ctx.params.page()?;
    ok(
        &ctx.out,
        ctx.out
            .groups(&page(&groups, start, max), list_detail(ctx, "group")),
    )
}

fn search(ctx: &Ctx<'_>, restriction: &Restriction) -> Result<Response, CrowdError> {
    let kind = ctx
        .params
        .get("entity-type")
        .ok_or_else(|| bad("entity-type query parameter required."))?;
    let kind = EntityType::parse(kind).ok_or_else(|| bad(format!("Unknown type: {kind}")))?;
    let (start, max) = ctx.params.page()?;
    match kind {
        EntityType::User => {
            let users = ctx.dir.search_users(restriction, start, max);
            ok(&ctx.out, ctx.out.users(&users, list_detail(ctx, "user")))
        }
        EntityType::Group => {
            let groups = ctx.dir.search_groups(restriction, start, max);
            ok(&ctx.out, ctx.out.groups(&groups, list_detail(ctx, "group")))
        }
    }
}
