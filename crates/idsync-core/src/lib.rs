//! The identity model of idsync and the pure logic around it: effective (transitive)
//! membership, the diff of a source snapshot against a directory, and the plan that turns a
//! flow's desired state and its ledger into target operations.
//!
//! This crate does no IO and depends on no async runtime (checked in CI). The connector traits
//! live here so that protocol and connector crates only need this crate to implement them.

pub mod clock;
pub mod connector;
pub mod forms;
pub mod graph;
pub mod groups;
pub mod image;
pub mod inactivity;
pub mod keeps;
mod ledger;
pub mod mapping;
pub mod model;
pub mod nesting;
pub mod plan;
pub mod scope;
pub mod seats;
pub mod state;

pub use clock::{Clock, ManualClock, SystemClock};
pub use connector::{
    error_chain, Change, Emptiness, Match, Outcome, ReadStats, RemoteGroup, RemoteUser, Source,
    SourceError, SourceRead, Target, TargetError, TargetOp, TargetSnapshot,
};
pub use forms::{
    Form, LearnedForm, LearnedOmission, OpKind, LEARNABLE_OMISSIONS, OMITTABLE_USER_ATTRIBUTES,
};
pub use graph::{effective_members, MembershipGraph};
pub use image::{DirectoryImage, Refresh};
pub use model::{
    Address, AttrValue, Email, Group, Key, MemberKind, MemberRef, Membership, MultiValue, Name,
    Phone, Snapshot, User,
};
pub use plan::{
    plan, Action, DeletionThreshold, DeprovisionAction, GroupDeletion, GroupRename, Operation,
    Plan, PlanOptions, Reason,
};
pub use seats::Seats;
pub use state::{
    dangling_members, desired_state, observed_ledger, DesiredState, LedgerGroup, LedgerState,
    LedgerUser, GONE_MEMBER_PREFIX,
};
