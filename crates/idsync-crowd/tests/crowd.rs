//! The Crowd protocol crate: entities, codecs, restrictions, the directory, events, the handler.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "crowd/directory.rs"]
mod directory;
#[path = "crowd/events.rs"]
mod events;
#[path = "crowd/support.rs"]
mod support;
