//! A Microsoft Graph tenant simulator: Entra ID (or Azure AD B2C) with users, groups, nested
//! memberships and an enterprise application, served over HTTP or HTTPS on loopback with the
//! token endpoint, the v1.0 endpoints idsync's Graph source uses, `$batch`, delta queries with
//! real semantics, writes, and fault injection.

pub mod api;
pub mod assertion;
mod delta;
pub mod directory;
pub mod faults;
mod login;
pub mod member_objects;
pub mod odata;
pub mod server;
pub mod signin;
pub mod tenant;
pub(crate) mod tls;

pub use assertion::RegisteredCert;
pub use directory::extensions_app_id;
pub use faults::Faults;
pub use server::{
    start, App, GraphSimOptions, RunningGraphSim, SimError, SimState, Stats, READ_ROLES,
};
pub use signin::{SignInOptions, DEFAULT_PASSWORD};
pub use tenant::{Kind, Tenant, TenantSpec};
