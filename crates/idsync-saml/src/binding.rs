//! The HTTP bindings, without HTTP: HTTP-Redirect (DEFLATE, base64, URL-encoding, the query
//! signature over `SAMLRequest=..&RelayState=..&SigAlg=..`) and HTTP-POST (base64 in a form
//! posted by an auto-submitting HTML page, every value escaped).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::dsig::ALG_RSA_SHA256;
use crate::error::SamlError;
use crate::keys::{verify_rsa_sha256, Certificate, SigningKey};
use crate::xml::{escape_attr, MAX_DOCUMENT_BYTES};

/// The largest RelayState accepted (the bindings allow 80 bytes; some SPs send a URL).
pub const MAX_RELAY_STATE_BYTES: usize = 1024;

fn url_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Builds the HTTP-Redirect URL carrying `xml` as `parameter` (`SAMLRequest`), signed with the
/// query signature when `key` is given.
pub(crate) fn redirect_url(
    endpoint: &str,
    parameter: &str,
    xml: &str,
    relay_state: Option<&str>,
    key: Option<&SigningKey>,
) -> String {
    let deflated = miniz_oxide::deflate::compress_to_vec(xml.as_bytes(), 8);
    let mut query = format!("{parameter}={}", url_encode(&STANDARD.encode(deflated)));
    if let Some(relay) = relay_state {
        query.push_str("&RelayState=");
        query.push_str(&url_encode(relay));
    }
    if let Some(key) = key {
        query.push_str("&SigAlg=");
        query.push_str(&url_encode(ALG_RSA_SHA256));
        let signature = STANDARD.encode(key.sign(query.as_bytes()));
        query.push_str("&Signature=");
        query.push_str(&url_encode(&signature));
    }
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{separator}{query}")
}

/// A message received by HTTP-Redirect, decoded; its query signature checked by
/// [`RedirectMessage::verify`].
#[derive(Debug, Clone)]
pub struct RedirectMessage {
    /// The inflated XML.
    pub xml: String,
    pub relay_state: Option<String>,
    sig_alg: Option<String>,
    signature: Option<Vec<u8>>,
    signed_octets: String,
}

impl RedirectMessage {
    /// Decodes the raw query string of the request (as received, still URL-encoded), reading
    /// `parameter` (`SAMLRequest` or `SAMLResponse`).
    pub fn decode(raw_query: &str, parameter: &str) -> Result<Self, SamlError> {
        if raw_query.len() > 4 * MAX_DOCUMENT_BYTES {
            return Err(SamlError::TooLarge {
                what: "query string",
                limit: 4 * MAX_DOCUMENT_BYTES,
            });
        }
        let mut message = None;
        let mut relay = None;
        let mut sig_alg = None;
        let mut signature = None;
        for pair in raw_query.trim_start_matches('?').split('&') {
            let (name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut value: String = form_urlencoded::parse(format!("v={raw_value}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if name != "RelayState" {
                // Base64 has no spaces: a '+' some senders leave unencoded decoded as one.
                value = value.replace(' ', "+");
            }
            let slot = match name {
                n if n == parameter => &mut message,
                "RelayState" => &mut relay,
                "SigAlg" => &mut sig_alg,
                "Signature" => &mut signature,
                _ => continue,
            };
            if slot.is_some() {
                return Err(SamlError::Unsupported(format!(
                    "{name} given twice in the query"
                )));
            }
            *slot = Some((raw_value.to_owned(), value));
        }
        let Some((raw_message, encoded)) = message else {
            return Err(SamlError::Unsupported(format!(
                "no {parameter} in the query"
            )));
        };
        let deflated = decode_base64(&encoded)?;
        let xml_bytes =
            miniz_oxide::inflate::decompress_to_vec_with_limit(&deflated, MAX_DOCUMENT_BYTES)
                .map_err(|_| SamlError::Inflate {
                    limit: MAX_DOCUMENT_BYTES,
                })?;
        let xml = String::from_utf8(xml_bytes).map_err(|e| SamlError::Encoding(e.to_string()))?;
        if let Some((_, r)) = &relay {
            if r.len() > MAX_RELAY_STATE_BYTES {
                return Err(SamlError::TooLarge {
                    what: "RelayState",
                    limit: MAX_RELAY_STATE_BYTES,
                });
            }
        }
        // The signed octets are the parameters as received, in the binding's order.
        let mut signed_octets = format!("{parameter}={raw_message}");
        if let Some((raw, _)) = &relay {
            signed_octets.push_str(&format!("&RelayState={raw}"));
        }
        if let Some((raw, _)) = &sig_alg {
            signed_octets.push_str(&format!("&SigAlg={raw}"));
        }
        Ok(Self {
            xml,
            relay_state: relay.map(|(_, v)| v),
            sig_alg: sig_alg.map(|(_, v)| v),
            signature: signature.map(|(_, v)| decode_base64(&v)).transpose()?,
            signed_octets,
        })
    }

    /// Whether the query carries a signature.
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }

    /// Verifies the query signature (RSA-SHA256 only) with any of `certificates`.
    pub fn verify(&self, certificates: &[Certificate]) -> Result<(), SamlError> {
        let Some(signature) = &self.signature else {
            return Err(SamlError::Unsigned("HTTP-Redirect query"));
        };
        match self.sig_alg.as_deref() {
            Some(ALG_RSA_SHA256) => {}
            other => {
                return Err(SamlError::Algorithm(format!(
                    "query signature algorithm {other:?}"
                )))
            }
        }
        let keys: Vec<_> = certificates.iter().map(Certificate::public_key).collect();
        verify_rsa_sha256(&keys, self.signed_octets.as_bytes(), signature)
    }
}

/// Decodes base64 (whitespace allowed, as forms and IdPs wrap lines).
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, SamlError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() > 2 * MAX_DOCUMENT_BYTES {
        return Err(SamlError::TooLarge {
            what: "base64 message",
            limit: 2 * MAX_DOCUMENT_BYTES,
        });
    }
    STANDARD
        .decode(compact)
        .map_err(|e| SamlError::Encoding(e.to_string()))
}

/// Decodes an HTTP-POST parameter (`SAMLResponse`, `SAMLRequest`) to its XML.
pub fn decode_post(value: &str) -> Result<String, SamlError> {
    let bytes = decode_base64(value)?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(SamlError::TooLarge {
            what: "XML document",
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|e| SamlError::Encoding(e.to_string()))
}

/// A message to deliver by HTTP-POST: the browser posts `parameter=value` (and RelayState) to
/// `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostForm {
    /// Where the browser posts (the SP's registered ACS URL).
    pub action: String,
    /// `SAMLResponse` (or `SAMLRequest`).
    pub parameter: &'static str,
    /// The base64 of the XML message.
    pub value: String,
    pub relay_state: Option<String>,
}

impl PostForm {
    /// The XML carried (decoded from `value`).
    pub fn xml(&self) -> Result<String, SamlError> {
        decode_post(&self.value)
    }

    /// An HTML page that posts the form as soon as it loads (a button does it without
    /// JavaScript). Every value is escaped; `script_nonce` is the CSP nonce of the server's
    /// `Content-Security-Policy`, if it sets one.
    pub fn html(&self, script_nonce: Option<&str>) -> String {
        let relay = self
            .relay_state
            .as_deref()
            .map(|r| {
                format!(
                    "<input type=\"hidden\" name=\"RelayState\" value=\"{}\">",
                    escape_attr(r)
                )
            })
            .unwrap_or_default();
        let nonce = script_nonce
            .map(|n| format!(" nonce=\"{}\"", escape_attr(n)))
            .unwrap_or_default();
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signing in</title></head>\
             <body><form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"{parameter}\" value=\"{value}\">{relay}\
             <noscript><p>JavaScript is off: press the button to continue.</p></noscript>\
             <button type=\"submit\">Continue</button></form>\
             <script{nonce}>document.forms[0].submit();</script></body></html>\n",
            action = escape_attr(&self.action),
            parameter = self.parameter,
            value = escape_attr(&self.value),
        )
    }
}

/// Encodes XML for HTTP-POST.
pub(crate) fn encode_post(xml: &str) -> String {
    STANDARD.encode(xml.as_bytes())
}
