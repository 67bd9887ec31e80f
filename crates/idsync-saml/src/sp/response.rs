//! Validation of the IdP's Response (HTTP-POST). The order matters: the signatures first, then
//! every value is read from the verified element (the signed assertion, or the assertion inside
//! the signed response), never from elsewhere in the document.

use std::collections::BTreeMap;

use roxmltree::Node;
use time::OffsetDateTime;

use super::claims::{EntraClaims, SamlLogin};
use super::ServiceProvider;
use crate::binding::decode_post;
use crate::dsig::verify_enveloped;
use crate::error::{malformed, SamlError};
use crate::protocol::{
    check_window, parse_instant, NameId, NameIdFormat, CM_BEARER, STATUS_SUCCESS,
};
use crate::replay::{ReplayCache, SentRequests};
use crate::xml::{at_most_one, children, exactly_one, is, parse, text_of, NS_SAML, NS_SAMLP};

const WHAT: &str = "Response";

/// What a validation needs besides the message: the time, the requests we sent, the assertions
/// already used.
pub struct ResponseCheck<'c> {
    pub now: OffsetDateTime,
    pub requests: &'c mut dyn SentRequests,
    pub replay: &'c mut dyn ReplayCache,
}

fn attribute<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attribute(name).map(str::trim)
}

fn optional_instant(node: Node<'_, '_>, name: &str) -> Result<Option<OffsetDateTime>, SamlError> {
    attribute(node, name)
        .map(|v| parse_instant(v, WHAT))
        .transpose()
}

impl ServiceProvider {
    /// Validates the `SAMLResponse` form field of an HTTP-POST to our ACS URL.
    pub fn validate_post(
        &self,
        saml_response: &str,
        check: ResponseCheck<'_>,
    ) -> Result<SamlLogin, SamlError> {
        let xml = decode_post(saml_response)?;
        self.validate_xml(&xml, check)
    }

    /// Validates a Response document.
    pub fn validate_xml(
        &self,
        xml: &str,
        check: ResponseCheck<'_>,
    ) -> Result<SamlLogin, SamlError> {
        let ResponseCheck {
            now,
            requests,
            replay,
        } = check;
        let config = &self.config;
        let certificates = &self.idp.signing_certificates;
        let skew = config.clock_skew;
        let doc = parse(xml)?;
        let root = doc.root_element();
        if !is(root, NS_SAMLP, "Response") {
            return Err(malformed(
                WHAT,
                format!("the root element is {}", root.tag_name().name()),
            ));
        }
        if root.attribute("Version") != Some("2.0") {
            return Err(malformed(WHAT, "Version is not 2.0"));
        }

        // 1. Status, first: an IdP's refusal (no assertion, often unsigned) is reported as such.
        //    Read from the unverified root: it can only refuse.
        let status = exactly_one(root, NS_SAMLP, "Status", WHAT)?;
        let code = exactly_one(status, NS_SAMLP, "StatusCode", WHAT)?;
        let value = attribute(code, "Value").unwrap_or_default();
        if value != STATUS_SUCCESS {
            let sub = children(code, NS_SAMLP, "StatusCode").find_map(|c| attribute(c, "Value"));
            let message = at_most_one(status, NS_SAMLP, "StatusMessage", WHAT)?
                .map(|m| text_of(m, WHAT))
                .transpose()?;
            let status = match sub {
                Some(sub) => format!("{value} ({sub})"),
                None => value.to_owned(),
            };
            return Err(SamlError::Status { status, message });
        }

        // 2. Signatures. A signature that is present is verified even when not required.
        let signed_response = verify_enveloped(root, certificates)?;
        if config.require.response && signed_response.is_none() {
            return Err(SamlError::Unsigned("Response"));
        }
        if children(root, NS_SAML, "EncryptedAssertion")
            .next()
            .is_some()
        {
            return Err(SamlError::Unsupported(
                "encrypted assertions (turn token encryption off at the IdP)".into(),
            ));
        }
        // The response holds exactly one assertion, as a direct child: the one we read.
        let assertion = exactly_one(root, NS_SAML, "Assertion", WHAT)?;
        let signed_assertion = verify_enveloped(assertion, certificates)?;
        if config.require.assertion && signed_assertion.is_none() {
            return Err(SamlError::Unsigned("Assertion"));
        }
        // What we read is the verified assertion, or the assertion child of the verified response.
        let assertion = match (signed_assertion, signed_response) {
            (Some(verified), _) => verified.node(),
            (None, Some(response)) => exactly_one(response.node(), NS_SAML, "Assertion", WHAT)?,
            (None, None) => return Err(SamlError::Unsigned("Response or Assertion")),
        };
        // Response-level values come from the verified response when it is signed; unsigned,
        // they only add refusals (the assertion's own values below are the binding ones).
        let response = signed_response.map(|r| r.node()).unwrap_or(root);

        // 3. Destination and issuers.
        match attribute(response, "Destination") {
            Some(found) if found != config.acs_url => {
                return Err(SamlError::Destination {
                    expected: config.acs_url.clone(),
                    found: found.to_owned(),
                })
            }
            None if signed_response.is_some() => {
                return Err(SamlError::Destination {
                    expected: config.acs_url.clone(),
                    found: String::new(),
                })
            }
            _ => {}
        }
        if let Some(issuer) = at_most_one(response, NS_SAML, "Issuer", WHAT)? {
            self.check_issuer(&text_of(issuer, WHAT)?)?;
        }
        let issuer = text_of(exactly_one(assertion, NS_SAML, "Issuer", WHAT)?, WHAT)?;
        self.check_issuer(&issuer)?;
        let assertion_id = attribute(assertion, "ID")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| malformed(WHAT, "an Assertion without ID"))?
            .to_owned();

        // 4. Subject: the NameID and a bearer confirmation for our ACS URL, in time, answering
        //    our request.
        let subject = exactly_one(assertion, NS_SAML, "Subject", WHAT)?;
        let name_id = exactly_one(subject, NS_SAML, "NameID", WHAT)?;
        let name_id = NameId {
            value: text_of(name_id, WHAT)?,
            format: NameIdFormat::from_uri(attribute(name_id, "Format")),
        };
        if name_id.value.is_empty() {
            return Err(malformed(WHAT, "an empty NameID"));
        }
        let response_irt = attribute(response, "InResponseTo").filter(|v| !v.is_empty());
        let mut confirmation_error = None;
        let mut confirmed = None;
        for confirmation in children(subject, NS_SAML, "SubjectConfirmation") {
            if attribute(confirmation, "Method") != Some(CM_BEARER) {
                continue;
            }
            match self.check_bearer(confirmation, now) {
                Ok(found) => {
                    confirmed = Some(found);
                    break;
                }
                Err(e) => confirmation_error = Some(e),
            }
        }
        let (confirmation_irt, confirmation_end) = match (confirmed, confirmation_error) {
            (Some(found), _) => found,
            (None, Some(error)) => return Err(error),
            (None, None) => return Err(malformed(WHAT, "no bearer SubjectConfirmation")),
        };
        let in_response_to = match (response_irt, confirmation_irt.as_deref()) {
            (Some(r), Some(a)) if r != a => {
                return Err(SamlError::InResponseToMismatch {
                    response: r.to_owned(),
                    assertion: a.to_owned(),
                })
            }
            // An unsigned Response's InResponseTo cannot make a signed unsolicited assertion
            // answer one of our requests: only a signed one counts.
            (Some(r), None) if signed_response.is_some() => Some(r.to_owned()),
            (_, a) => a.map(str::to_owned),
        };
        if in_response_to.is_none() && !config.allow_unsolicited {
            return Err(SamlError::Unsolicited);
        }

        // 5. Conditions: the time window and our entity id in every AudienceRestriction.
        let conditions = exactly_one(assertion, NS_SAML, "Conditions", WHAT)?;
        let not_before = optional_instant(conditions, "NotBefore")?;
        let conditions_end = optional_instant(conditions, "NotOnOrAfter")?;
        check_window(now, skew, not_before, conditions_end)?;
        let restrictions: Vec<_> = children(conditions, NS_SAML, "AudienceRestriction").collect();
        if restrictions.is_empty() {
            return Err(SamlError::Audience {
                expected: config.entity_id.clone(),
                found: Vec::new(),
            });
        }
        for restriction in restrictions {
            let audiences = children(restriction, NS_SAML, "Audience")
                .map(|a| text_of(a, WHAT))
                .collect::<Result<Vec<_>, _>>()?;
            if !audiences.contains(&config.entity_id) {
                return Err(SamlError::Audience {
                    expected: config.entity_id.clone(),
                    found: audiences,
                });
            }
        }

        // 6. The authentication statement and the attributes.
        let authn = exactly_one(assertion, NS_SAML, "AuthnStatement", WHAT)?;
        let authn_instant = optional_instant(authn, "AuthnInstant")?
            .ok_or_else(|| malformed(WHAT, "AuthnStatement without AuthnInstant"))?;
        check_window(
            now,
            skew,
            None,
            optional_instant(authn, "SessionNotOnOrAfter")?,
        )?;
        let session_index = attribute(authn, "SessionIndex").map(str::to_owned);
        let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for statement in children(assertion, NS_SAML, "AttributeStatement") {
            if children(statement, NS_SAML, "EncryptedAttribute")
                .next()
                .is_some()
            {
                return Err(SamlError::Unsupported("encrypted attributes".into()));
            }
            for attr in children(statement, NS_SAML, "Attribute") {
                let name = attribute(attr, "Name")
                    .ok_or_else(|| malformed(WHAT, "an Attribute without Name"))?;
                let values = attributes.entry(name.to_owned()).or_default();
                // A structured value (an element inside, as eduPersonTargetedID's NameID) is
                // no text to map: skipped, not a reason to refuse the login.
                let texts = children(attr, NS_SAML, "AttributeValue")
                    .filter(|v| !v.children().any(|c| c.is_element()));
                for value in texts {
                    let text = text_of(value, WHAT)?;
                    if !text.is_empty() {
                        values.push(text);
                    }
                }
            }
        }

        // 7. Last, once everything else holds: the assertion is used once, the request answered once.
        let valid_until = [Some(confirmation_end), conditions_end]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(confirmation_end);
        replay.record(&assertion_id, valid_until + skew, now)?;
        if let Some(request) = &in_response_to {
            if !requests.take(request, now) {
                return Err(SamlError::UnknownRequest(request.clone()));
            }
        }

        let claims = EntraClaims::from_attributes(&attributes);
        Ok(SamlLogin {
            subject: claims
                .object_id
                .clone()
                .unwrap_or_else(|| name_id.value.clone()),
            name_id,
            issuer,
            in_response_to,
            assertion_id,
            session_index,
            authn_instant,
            valid_until,
            claims,
            attributes,
        })
    }

    fn check_issuer(&self, issuer: &str) -> Result<(), SamlError> {
        if issuer != self.idp.entity_id {
            return Err(SamlError::Issuer {
                expected: self.idp.entity_id.clone(),
                found: issuer.to_owned(),
            });
        }
        Ok(())
    }

    /// A bearer SubjectConfirmationData: Recipient is our ACS URL, NotOnOrAfter present and not
    /// reached, NotBefore (if any) reached. Answers its InResponseTo and NotOnOrAfter.
    fn check_bearer(
        &self,
        confirmation: Node<'_, '_>,
        now: OffsetDateTime,
    ) -> Result<(Option<String>, OffsetDateTime), SamlError> {
        let data = exactly_one(confirmation, NS_SAML, "SubjectConfirmationData", WHAT)?;
        let recipient = attribute(data, "Recipient").unwrap_or_default();
        if recipient != self.config.acs_url {
            return Err(SamlError::Recipient {
                expected: self.config.acs_url.clone(),
                found: recipient.to_owned(),
            });
        }
        let end = optional_instant(data, "NotOnOrAfter")?.ok_or_else(|| {
            malformed(
                WHAT,
                "a bearer SubjectConfirmationData without NotOnOrAfter",
            )
        })?;
        check_window(
            now,
            self.config.clock_skew,
            optional_instant(data, "NotBefore")?,
            Some(end),
        )?;
        let irt = attribute(data, "InResponseTo")
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        Ok((irt, end))
    }
}
