//! HTTP reads with a bounded body, for discovery, the JWKS and the token endpoint.

use super::RpError;

/// The largest body read from an identity provider.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

pub(crate) async fn read_body(
    url: &str,
    mut response: reqwest::Response,
) -> Result<(u16, Vec<u8>), RpError> {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(RpError::BadDocument {
                        url: url.to_owned(),
                        reason: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(RpError::Http {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok((status, body))
}

/// GET a JSON document; anything but 200 is an error carrying the start of the body.
pub(crate) async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, RpError> {
    let response = http
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| RpError::Http {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let (status, body) = read_body(url, response).await?;
    if status != 200 {
        return Err(RpError::HttpStatus {
            url: url.to_owned(),
            status,
            body: excerpt(&body),
        });
    }
    Ok(body)
}

pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

/// `https`, or `http` to a loopback host only (tests and local development).
pub(crate) fn check_endpoint(name: &str, value: &str) -> Result<url::Url, RpError> {
    let url = url::Url::parse(value)
        .map_err(|e| RpError::Config(format!("{name} {value:?} is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(RpError::Config(format!(
            "{name} {value:?} must be https (http only to a loopback address)"
        ))),
    }
}
