//! Crowd's error answers: a `reason` from Crowd's fixed list, a human message, and the HTTP
//! status Crowd pairs with it.
//!
//! XML: `<error><reason>USER_NOT_FOUND</reason><message>User &lt;bob&gt; does not exist</message></error>`;
//! JSON: `{"reason":"USER_NOT_FOUND","message":"User <bob> does not exist"}`.

use crate::codec::xml::escape;
use crate::{Format, Response};

/// Crowd's error reasons (`ErrorEntity.ErrorReason`), spelled on the wire as Crowd spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    /// The application is unknown, its password wrong, or the remote address not allowed.
    ApplicationAccessDenied,
    /// The application may not perform the operation (e.g. a write to a read-only directory).
    ApplicationPermissionDenied,
    ExpiredCredential,
    GroupNotFound,
    IllegalArgument,
    InactiveAccount,
    /// A user's name and password did not authenticate.
    InvalidUserAuthentication,
    InvalidCredential,
    InvalidEmail,
    InvalidGroup,
    InvalidSsoToken,
    InvalidUser,
    MembershipNotFound,
    NestedGroupsNotSupported,
    UnsupportedOperation,
    UserNotFound,
    OperationFailed,
    /// The event token is too old or unknown: the client falls back to a full synchronisation.
    EventTokenExpired,
    /// The server keeps no events: incremental synchronisation is not available.
    IncrementalSyncNotAvailable,
    PermissionDenied,
    MembershipAlreadyExists,
    ApplicationNotFound,
    WebhookNotFound,
    InvalidMembership,
}

impl ErrorReason {
    /// The reason as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::ApplicationAccessDenied => "APPLICATION_ACCESS_DENIED",
            ErrorReason::ApplicationPermissionDenied => "APPLICATION_PERMISSION_DENIED",
            ErrorReason::ExpiredCredential => "EXPIRED_CREDENTIAL",
            ErrorReason::GroupNotFound => "GROUP_NOT_FOUND",
            ErrorReason::IllegalArgument => "ILLEGAL_ARGUMENT",
            ErrorReason::InactiveAccount => "INACTIVE_ACCOUNT",
            ErrorReason::InvalidUserAuthentication => "INVALID_USER_AUTHENTICATION",
            ErrorReason::InvalidCredential => "INVALID_CREDENTIAL",
            ErrorReason::InvalidEmail => "INVALID_EMAIL",
            ErrorReason::InvalidGroup => "INVALID_GROUP",
            ErrorReason::InvalidSsoToken => "INVALID_SSO_TOKEN",
            ErrorReason::InvalidUser => "INVALID_USER",
            ErrorReason::MembershipNotFound => "MEMBERSHIP_NOT_FOUND",
            ErrorReason::NestedGroupsNotSupported => "NESTED_GROUPS_NOT_SUPPORTED",
            ErrorReason::UnsupportedOperation => "UNSUPPORTED_OPERATION",
            ErrorReason::UserNotFound => "USER_NOT_FOUND",
            ErrorReason::OperationFailed => "OPERATION_FAILED",
            ErrorReason::EventTokenExpired => "EVENT_TOKEN_EXPIRED",
            ErrorReason::IncrementalSyncNotAvailable => "INCREMENTAL_SYNC_NOT_AVAILABLE",
            ErrorReason::PermissionDenied => "PERMISSION_DENIED",
            ErrorReason::MembershipAlreadyExists => "MEMBERSHIP_ALREADY_EXISTS",
            ErrorReason::ApplicationNotFound => "APPLICATION_NOT_FOUND",
            ErrorReason::WebhookNotFound => "WEBHOOK_NOT_FOUND",
            ErrorReason::InvalidMembership => "INVALID_MEMBERSHIP",
        }
    }

    /// Every reason (for parsers and tests).
    pub const ALL: [ErrorReason; 24] = [
        ErrorReason::ApplicationAccessDenied,
        ErrorReason::ApplicationPermissionDenied,
        ErrorReason::ExpiredCredential,
        ErrorReason::GroupNotFound,
        ErrorReason::IllegalArgument,
        ErrorReason::InactiveAccount,
        ErrorReason::InvalidUserAuthentication,
        ErrorReason::InvalidCredential,
        ErrorReason::InvalidEmail,
        ErrorReason::InvalidGroup,
        ErrorReason::InvalidSsoToken,
        ErrorReason::InvalidUser,
        ErrorReason::MembershipNotFound,
        ErrorReason::NestedGroupsNotSupported,
        ErrorReason::UnsupportedOperation,
        ErrorReason::UserNotFound,
        ErrorReason::OperationFailed,
        ErrorReason::EventTokenExpired,
        ErrorReason::IncrementalSyncNotAvailable,
        ErrorReason::PermissionDenied,
        ErrorReason::MembershipAlreadyExists,
        ErrorReason::ApplicationNotFound,
        ErrorReason::WebhookNotFound,
        ErrorReason::InvalidMembership,
    ];

    /// The reason named on the wire, if Crowd has it.
    pub fn parse(s: &str) -> Option<ErrorReason> {
        ErrorReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A Crowd error: what the handler answers when a request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {}: {message}", reason.as_str())]
pub struct CrowdError {
    pub status: u16,
    pub reason: ErrorReason,
    pub message: String,
}

impl CrowdError {
    pub fn new(status: u16, reason: ErrorReason, message: impl Into<String>) -> CrowdError {
        CrowdError {
            status,
            reason,
            message: message.into(),
        }
    }

    /// The answer for this error in `format`.
    pub fn response(&self, format: Format) -> Response {
        error_response(self.status, self.reason, &self.message, format)
    }
}

/// The body of an error in `format`, as Crowd writes it.
pub fn error_body(reason: ErrorReason, message: &str, format: Format) -> Vec<u8> {
    match format {
        Format::Json => serde_json::json!({"reason": reason.as_str(), "message": message})
            .to_string()
            .into_bytes(),
        Format::Xml => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><error><reason>{}</reason><message>{}</message></error>",
            reason.as_str(),
            escape(message)
        )
        .into_bytes(),
    }
}

/// An error answer with Crowd's body; the front-end uses it for its own answers (application
/// authentication: 401 `APPLICATION_ACCESS_DENIED`; an address not allowed: 403 with the same
/// reason, as Crowd).
pub fn error_response(status: u16, reason: ErrorReason, message: &str, format: Format) -> Response {
    Response::new(status, format, error_body(reason, message, format))
}
