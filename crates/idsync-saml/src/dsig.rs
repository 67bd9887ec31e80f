//! XML Signature (<https://www.w3.org/TR/xmldsig-core1/>), restricted to what SAML needs and
//! nothing more: one enveloped `ds:Signature` as a direct child of the signed element, one
//! `Reference` whose URI is `#<ID of that element>`, the ID held by exactly one element of the
//! document, the transforms enveloped-signature and exclusive c14n (with or without comments),
//! SHA-256 digests, RSA-SHA256 signatures, keys from configuration only (KeyInfo is ignored).
//!
//! Verification answers the element the signature covers ([`Verified`]); callers read data from
//! that element only, which is what defeats signature wrapping.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use roxmltree::Node;
use sha2::{Digest, Sha256};

use crate::c14n::{self, canonicalize};
use crate::error::SamlError;
use crate::keys::{verify_rsa_sha256, Certificate, SigningKey};
use crate::xml::{children, escape_attr, is, parse, NS_DS};

pub(crate) const ALG_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub(crate) const ALG_EXC_C14N_COMMENTS: &str =
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
pub(crate) const ALG_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub(crate) const ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub(crate) const ALG_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// The attribute names other XML tools resolve same-document references with: an ID counted
/// under any of them is a duplicate.
const ID_ATTRIBUTES: [&str; 4] = ["ID", "Id", "id", "AssertionID"];

/// An element whose enveloped signature verified. Only this element (and its descendants) may
/// be read as signed data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verified<'a, 'i> {
    node: Node<'a, 'i>,
}

impl<'a, 'i> Verified<'a, 'i> {
    pub(crate) fn node(&self) -> Node<'a, 'i> {
        self.node
    }
}

fn structure(detail: impl Into<String>) -> SamlError {
    SamlError::SignatureStructure(detail.into())
}

fn algorithm_of<'a>(node: Node<'a, '_>) -> Result<&'a str, SamlError> {
    node.attribute("Algorithm")
        .ok_or_else(|| structure(format!("{} without Algorithm", node.tag_name().name())))
}

fn element_children<'a, 'i>(node: Node<'a, 'i>) -> Vec<Node<'a, 'i>> {
    node.children().filter(Node::is_element).collect()
}

/// The c14n options of a CanonicalizationMethod or Transform naming exclusive c14n.
fn exc_c14n_options(method: Node<'_, '_>, algorithm: &str) -> Result<c14n::Options, SamlError> {
    let with_comments = match algorithm {
        ALG_EXC_C14N => false,
        ALG_EXC_C14N_COMMENTS => true,
        other => return Err(SamlError::Algorithm(format!("canonicalization {other}"))),
    };
    let mut inclusive_prefixes = Vec::new();
    for child in element_children(method) {
        if child.tag_name().namespace() == Some(ALG_EXC_C14N)
            && child.tag_name().name() == "InclusiveNamespaces"
        {
            if let Some(list) = child.attribute("PrefixList") {
                inclusive_prefixes.extend(list.split_whitespace().map(str::to_owned));
            }
        } else {
            return Err(structure(format!(
                "unexpected {} in a canonicalization method",
                child.tag_name().name()
            )));
        }
    }
    Ok(c14n::Options {
        with_comments,
        inclusive_prefixes,
        exclude: None,
    })
}

fn base64_content(node: Node<'_, '_>) -> Result<Vec<u8>, SamlError> {
    let text: String = node
        .children()
        .filter(Node::is_text)
        .filter_map(|t| t.text())
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(text)
        .map_err(|e| structure(format!("{} is not base64: {e}", node.tag_name().name())))
}

/// Verifies the enveloped signature of `element` with `certificates`. `Ok(None)` when the element
/// carries no signature; an error for a signature that is present and refused.
pub(crate) fn verify_enveloped<'a, 'i>(
    element: Node<'a, 'i>,
    certificates: &[Certificate],
) -> Result<Option<Verified<'a, 'i>>, SamlError> {
    let mut signatures = children(element, NS_DS, "Signature");
    let Some(signature) = signatures.next() else {
        return Ok(None);
    };
    if signatures.next().is_some() {
        return Err(structure(format!(
            "more than one Signature in {}",
            element.tag_name().name()
        )));
    }
    let parts = element_children(signature);
    let [signed_info, signature_value, rest @ ..] = parts.as_slice() else {
        return Err(structure("a Signature needs SignedInfo and SignatureValue"));
    };
    if !is(*signed_info, NS_DS, "SignedInfo") || !is(*signature_value, NS_DS, "SignatureValue") {
        return Err(structure(
            "a Signature starts with SignedInfo then SignatureValue",
        ));
    }
    if rest.iter().any(|n| !is(*n, NS_DS, "KeyInfo")) || rest.len() > 1 {
        return Err(structure(
            "a Signature holds nothing but SignedInfo, SignatureValue and KeyInfo",
        ));
    }

    let info = element_children(*signed_info);
    let [canonicalization, signature_method, references @ ..] = info.as_slice() else {
        return Err(structure(
            "SignedInfo needs CanonicalizationMethod, SignatureMethod and a Reference",
        ));
    };
    if !is(*canonicalization, NS_DS, "CanonicalizationMethod")
        || !is(*signature_method, NS_DS, "SignatureMethod")
    {
        return Err(structure(
            "SignedInfo starts with CanonicalizationMethod then SignatureMethod",
        ));
    }
    let [reference] = references else {
        return Err(structure(format!(
            "exactly one Reference expected, found {}",
            references.len()
        )));
    };
    if !is(*reference, NS_DS, "Reference") {
        return Err(structure("SignedInfo holds one Reference"));
    }
    let info_options = exc_c14n_options(*canonicalization, algorithm_of(*canonicalization)?)?;
    let method = algorithm_of(*signature_method)?;
    if method != ALG_RSA_SHA256 {
        return Err(SamlError::Algorithm(format!("signature method {method}")));
    }
    if element_children(*signature_method).iter().any(|_| true) {
        return Err(structure("SignatureMethod takes no parameters"));
    }

    // The reference points to the element we then read, by an ID no other element holds.
    let uri = reference.attribute("URI").unwrap_or_default();
    let id = uri
        .strip_prefix('#')
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            structure(format!(
                "Reference URI {uri:?} does not name an element by ID"
            ))
        })?;
    if element.attribute("ID") != Some(id) {
        return Err(structure(format!(
            "the Reference points to {uri:?}, not to the {} that holds the signature",
            element.tag_name().name()
        )));
    }
    let holders = element
        .document()
        .descendants()
        .filter(|n| n.is_element())
        .filter(|n| ID_ATTRIBUTES.iter().any(|a| n.attribute(*a) == Some(id)))
        .count();
    if holders != 1 {
        return Err(structure(format!("{holders} elements hold the ID {id:?}")));
    }

    let steps = element_children(*reference);
    let (transforms, digest_method, digest_value) = match steps.as_slice() {
        [t, m, v] if is(*t, NS_DS, "Transforms") => (Some(*t), *m, *v),
        [m, v] => (None, *m, *v),
        _ => {
            return Err(structure(
                "a Reference holds Transforms, DigestMethod and DigestValue",
            ))
        }
    };
    if !is(digest_method, NS_DS, "DigestMethod") || !is(digest_value, NS_DS, "DigestValue") {
        return Err(structure(
            "a Reference holds Transforms, DigestMethod and DigestValue",
        ));
    }
    let mut enveloped = false;
    let mut reference_options: Option<c14n::Options> = None;
    for transform in transforms.map(element_children).unwrap_or_default() {
        if !is(transform, NS_DS, "Transform") {
            return Err(structure("Transforms holds Transform elements only"));
        }
        match algorithm_of(transform)? {
            ALG_ENVELOPED if !enveloped && reference_options.is_none() => enveloped = true,
            alg @ (ALG_EXC_C14N | ALG_EXC_C14N_COMMENTS) if reference_options.is_none() => {
                reference_options = Some(exc_c14n_options(transform, alg)?)
            }
            other => {
                return Err(SamlError::Algorithm(format!(
                    "transform {other} (or one repeated)"
                )))
            }
        }
    }
    if !enveloped {
        return Err(structure("the signature is inside the signed element: the enveloped-signature transform is required"));
    }
    let Some(mut reference_options) = reference_options else {
        return Err(SamlError::Algorithm(
            "a reference without exclusive c14n (inclusive c14n is not accepted)".into(),
        ));
    };
    // A bare-name reference (`#id`) drops comments whatever the c14n says (XMLDSig 4.4.3.3).
    reference_options.with_comments = false;
    reference_options.exclude = Some(signature.id());
    let digest_algorithm = algorithm_of(digest_method)?;
    if digest_algorithm != ALG_SHA256 {
        return Err(SamlError::Algorithm(format!("digest {digest_algorithm}")));
    }

    let canonical = canonicalize(element, &reference_options)?;
    let digest = Sha256::digest(canonical.as_bytes());
    if digest.as_slice() != base64_content(digest_value)?.as_slice() {
        return Err(SamlError::DigestMismatch);
    }
    let signed_info_canonical = canonicalize(*signed_info, &info_options)?;
    let keys: Vec<_> = certificates.iter().map(Certificate::public_key).collect();
    verify_rsa_sha256(
        &keys,
        signed_info_canonical.as_bytes(),
        &base64_content(*signature_value)?,
    )?;
    Ok(Some(Verified { node: element }))
}

/// Signs the element of `xml` whose `ID` is `id` with an enveloped signature (exclusive c14n,
/// SHA-256, RSA-SHA256, our certificate in KeyInfo), placed right after the element's
/// `Issuer` child as the SAML schemas want it (first child when there is no Issuer).
pub(crate) fn sign_enveloped(xml: &str, id: &str, key: &SigningKey) -> Result<String, SamlError> {
    let doc = parse(xml)?;
    let element = doc
        .descendants()
        .find(|n| n.is_element() && n.attribute("ID") == Some(id))
        .ok_or_else(|| structure(format!("no element with ID {id:?} to sign")))?;
    let digest = Sha256::digest(canonicalize(element, &c14n::Options::default())?.as_bytes());
    let signed_info = format!(
        concat!(
            "<ds:SignedInfo xmlns:ds=\"{ds}\">",
            "<ds:CanonicalizationMethod Algorithm=\"{c14n}\"></ds:CanonicalizationMethod>",
            "<ds:SignatureMethod Algorithm=\"{rsa}\"></ds:SignatureMethod>",
            "<ds:Reference URI=\"#{id}\"><ds:Transforms>",
            "<ds:Transform Algorithm=\"{env}\"></ds:Transform>",
            "<ds:Transform Algorithm=\"{c14n}\"></ds:Transform>",
            "</ds:Transforms><ds:DigestMethod Algorithm=\"{sha}\"></ds:DigestMethod>",
            "<ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>"
        ),
        ds = NS_DS,
        c14n = ALG_EXC_C14N,
        rsa = ALG_RSA_SHA256,
        env = ALG_ENVELOPED,
        sha = ALG_SHA256,
        id = escape_attr(id),
        digest = STANDARD.encode(digest),
    );
    let info_doc = parse(&signed_info)?;
    let canonical_info = canonicalize(info_doc.root_element(), &c14n::Options::default())?;
    let value = STANDARD.encode(key.sign(canonical_info.as_bytes()));
    let info_in_place = signed_info.replacen(&format!(" xmlns:ds=\"{NS_DS}\""), "", 1);
    let signature = format!(
        "<ds:Signature xmlns:ds=\"{NS_DS}\">{info_in_place}<ds:SignatureValue>{value}</ds:SignatureValue>\
         <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\
         </ds:Signature>",
        cert = key.certificate().to_base64(),
    );
    let at = match element
        .children()
        .find(|c| c.is_element() && c.tag_name().name() == "Issuer")
    {
        Some(issuer) => issuer.range().end,
        None => {
            // Right after the start tag.
            let start = element.range().start;
            let rest = xml.get(start..).unwrap_or_default();
            start + rest.find('>').map(|i| i + 1).unwrap_or(rest.len())
        }
    };
    let mut out = String::with_capacity(xml.len() + signature.len());
    out.push_str(xml.get(..at).unwrap_or_default());
    out.push_str(&signature);
    out.push_str(xml.get(at..).unwrap_or_default());
    Ok(out)
}

/// Exclusive XML Canonicalization 1.0 of a document's root element (`with_comments` for the
/// `#WithComments` variant; `inclusive_prefixes` is the InclusiveNamespaces PrefixList).
/// Exposed so the canonicalizer can be checked against other implementations.
pub fn canonicalize_exclusive(
    xml: &str,
    with_comments: bool,
    inclusive_prefixes: &[&str],
) -> Result<String, SamlError> {
    let doc = parse(xml)?;
    let options = c14n::Options {
        with_comments,
        inclusive_prefixes: inclusive_prefixes.iter().map(|p| (*p).to_owned()).collect(),
        exclude: None,
    };
    canonicalize(doc.root_element(), &options)
}
