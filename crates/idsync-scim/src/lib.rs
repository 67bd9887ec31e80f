//! SCIM 2.0 for idsync, both ways: what an endpoint needs to serve requests and what a client
//! needs to send them.
//!
//! - [`filter`]: the whole filter grammar of RFC 7644 §3.4.2.2 (attribute paths with schema
//!   URNs and sub-attributes, `[...]` value filters, `and`/`or`/`not`, grouping, every operator)
//!   and its evaluation against a resource, honouring each attribute's `caseExact`.
//! - [`patch`]: PATCH operations (§3.5.2) with and without paths, value filters in paths, and
//!   the forms Microsoft Entra sends.
//! - [`schema`]: the core User and Group schemas and the enterprise extension, as served on
//!   `/Schemas`, and attribute lookups (canonical names, types, case rules).
//! - [`resource`]: idsync's model to SCIM JSON and back.
//! - [`error`]: errors with their HTTP status and `scimType`.
//!
//! Parsers never panic and bound their recursion, whatever the input.

pub mod error;
pub mod filter;
pub mod patch;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimType};

/// Schema URNs.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
pub const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
