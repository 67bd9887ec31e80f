//! Bearer credentials, read the one way for every endpoint: `Authorization: <scheme> <token>`
//! with the scheme compared case-insensitively (RFC 7235 §2.1; RFC 6750 names it `Bearer`).

use axum::http::{header, HeaderMap};

/// The token of an `Authorization: Bearer <token>` header (any case of `Bearer`, spaces
/// around the token ignored); `None` without the header, with another scheme or no token.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether the request's bearer token is `expected`, compared in constant time.
pub(crate) fn bearer_is(headers: &HeaderMap, expected: &str) -> bool {
    bearer(headers).is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
        );
        h
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR  abc ",
            " Bearer abc",
        ] {
            assert_eq!(bearer(&with(v)), Some("abc"), "{v:?}");
        }
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_none() {
        for v in [
            "Basic abc",
            "abc",
            "Bearer",
            "Bearer ",
            "Bearerabc",
            "Bearer\tabc",
            "",
        ] {
            assert_eq!(bearer(&with(v)), None, "{v:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn bearer_is_compares_the_whole_token() {
        assert!(bearer_is(&with("bearer s3cret"), "s3cret"));
        assert!(!bearer_is(&with("bearer s3cre"), "s3cret"));
        assert!(!bearer_is(&with("bearer s3cret2"), "s3cret"));
        assert!(!bearer_is(&HeaderMap::new(), ""));
    }
}
