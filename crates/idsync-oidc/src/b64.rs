//! base64url without padding (RFC 7515 §2), strict on input.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()
}
