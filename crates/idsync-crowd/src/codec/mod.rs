//! Crowd's entities in JSON and XML, both ways.

pub mod json;
pub mod xml;
