//! XML as Crowd writes and reads it.

use crate::error::CrowdError;
use crate::restriction::{bad, Restriction};

/// Text escaped for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

pub fn parse_restriction(_body: &[u8]) -> Result<Restriction, CrowdError> {
    Err(bad("not written yet"))
}
