//! Our SP metadata, and the import of the IdP's (Entra's federation metadata: the SAML part, its
//! IDPSSODescriptor, is read; the WS-Federation RoleDescriptors are skipped).

use roxmltree::Node;

use super::ServiceProvider;
use crate::error::SamlError;
use crate::keys::Certificate;
use crate::protocol::{NameIdFormat, BINDING_POST, BINDING_REDIRECT};
use crate::xml::{children, escape_attr, is, parse, NS_MD};

/// What the SP needs of its identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpDescriptor {
    /// The IdP's entity id: the Issuer of its responses (Entra: `https://sts.windows.net/<tenant>/`).
    pub entity_id: String,
    /// Its SingleSignOnService for HTTP-Redirect.
    pub sso_url: String,
    /// Every signing certificate: all are accepted (during a rollover Entra publishes two).
    pub signing_certificates: Vec<Certificate>,
}

impl IdpDescriptor {
    /// Reads an IdP's metadata (an EntityDescriptor with an IDPSSODescriptor: Entra's federation
    /// metadata, pysaml2's, ...): the entityID, the HTTP-Redirect SingleSignOnService, and every
    /// KeyDescriptor for signing (`use="signing"` or no `use`). The metadata's own signature is not
    /// checked: it is fetched over HTTPS from the IdP or given by the administrator.
    pub fn from_metadata(xml: &str) -> Result<Self, SamlError> {
        let doc = parse(xml)?;
        let root = doc.root_element();
        if !is(root, NS_MD, "EntityDescriptor") {
            return Err(SamlError::Metadata(
                "the root element is not an md:EntityDescriptor".into(),
            ));
        }
        let entity_id = root
            .attribute("entityID")
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| SamlError::Metadata("EntityDescriptor without entityID".into()))?
            .trim()
            .to_owned();
        let mut descriptors = children(root, NS_MD, "IDPSSODescriptor");
        let idp = descriptors
            .next()
            .ok_or_else(|| SamlError::Metadata(format!("{entity_id} has no IDPSSODescriptor")))?;
        if descriptors.next().is_some() {
            return Err(SamlError::Metadata(format!(
                "{entity_id} has more than one IDPSSODescriptor"
            )));
        }
        let sso_url = children(idp, NS_MD, "SingleSignOnService")
            .find(|s| s.attribute("Binding") == Some(BINDING_REDIRECT))
            .and_then(|s| s.attribute("Location"))
            .map(|l| l.trim().to_owned())
            .ok_or_else(|| {
                SamlError::Metadata(format!(
                    "{entity_id} has no HTTP-Redirect SingleSignOnService"
                ))
            })?;
        let mut signing_certificates = Vec::new();
        for descriptor in children(idp, NS_MD, "KeyDescriptor") {
            if !matches!(descriptor.attribute("use"), None | Some("signing")) {
                continue;
            }
            for cert in certificates_in(descriptor) {
                let cert = Certificate::from_base64(cert.text().unwrap_or_default())?;
                if !signing_certificates.contains(&cert) {
                    signing_certificates.push(cert);
                }
            }
        }
        if signing_certificates.is_empty() {
            return Err(SamlError::Metadata(format!(
                "{entity_id} publishes no signing certificate"
            )));
        }
        Ok(Self {
            entity_id,
            sso_url,
            signing_certificates,
        })
    }
}

/// The `X509Certificate` elements of a KeyDescriptor's KeyInfo/X509Data, by local name:
/// Microsoft's documentation shows the KeyInfo under a mistyped (`https:`) xmldsig namespace.
fn certificates_in<'a, 'i>(descriptor: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    descriptor.descendants().filter(|n| {
        n.is_element()
            && n.tag_name().name() == "X509Certificate"
            && n.parent_element()
                .is_some_and(|p| p.tag_name().name() == "X509Data")
    })
}

impl ServiceProvider {
    /// Our SP metadata: entity id, the ACS URL (HTTP-POST), the NameID formats we take, our
    /// signing certificate when we sign requests, and which signatures we want.
    pub fn metadata_xml(&self) -> String {
        let config = &self.config;
        let key = config
            .signing_key
            .as_ref()
            .map(|k| {
                format!(
                    "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
                     <ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                    k.certificate().to_base64()
                )
            })
            .unwrap_or_default();
        let formats: String = [
            NameIdFormat::Persistent,
            NameIdFormat::EmailAddress,
            NameIdFormat::Unspecified,
            NameIdFormat::Transient,
        ]
        .iter()
        .map(|f| format!("<md:NameIDFormat>{}</md:NameIDFormat>", f.uri()))
        .collect();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<md:EntityDescriptor xmlns:md=\"{NS_MD}\" entityID=\"{entity}\">\
             <md:SPSSODescriptor AuthnRequestsSigned=\"{signed}\" WantAssertionsSigned=\"{want}\" \
             protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{key}{formats}\
             <md:AssertionConsumerService Binding=\"{BINDING_POST}\" Location=\"{acs}\" index=\"0\" isDefault=\"true\"/>\
             </md:SPSSODescriptor></md:EntityDescriptor>\n",
            entity = escape_attr(&config.entity_id),
            signed = config.signing_key.is_some(),
            want = config.require.assertion,
            acs = escape_attr(&config.acs_url),
        )
    }
}
