//! The Crowd protocol crate: entities, codecs, restrictions, the directory, events, the handler.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "crowd/directory.rs"]
mod directory;
#[path = "crowd/events.rs"]
mod events;
#[path = "crowd/fuzz.rs"]
mod fuzz;
#[path = "crowd/handler.rs"]
mod handler;
#[path = "crowd/model.rs"]
mod model;
#[path = "crowd/restriction.rs"]
mod restriction;
#[path = "crowd/support.rs"]
mod support;
#[path = "crowd/update.rs"]
mod update;
