//! Parsing (no DTD, bounded size, depth and node count), namespaces, the text of an element
//! (comments never split it), and escaping for the documents the crate writes.

use roxmltree::{Document, Node, ParsingOptions};

use crate::error::{malformed, SamlError};

pub(crate) const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub(crate) const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The largest document read (Entra's federation metadata is some tens of KiB; a response with
/// 150 groups a few tens).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
const MAX_NODES: u32 = 100_000;
const MAX_DEPTH: usize = 64;

/// Parses a document: refuses DTDs (so entities other than the five predefined ones), documents
/// past [`MAX_DOCUMENT_BYTES`], past 100,000 nodes or nested deeper than 64 elements.
pub(crate) fn parse(text: &str) -> Result<Document<'_>, SamlError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(SamlError::TooLarge {
            what: "XML document",
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
    };
    let doc =
        Document::parse_with_options(text, options).map_err(|e| SamlError::Xml(e.to_string()))?;
    let mut stack = vec![(doc.root_element(), 1usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(SamlError::Xml(format!(
                "elements nested deeper than {MAX_DEPTH}"
            )));
        }
        stack.extend(
            node.children()
                .filter(Node::is_element)
                .map(|c| (c, depth + 1)),
        );
    }
    Ok(doc)
}

pub(crate) fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns) && node.tag_name().name() == name
}

pub(crate) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |c| is(*c, ns, name))
}

/// The one child `ns:name` of `node`, `None` when absent; two or more are refused.
pub(crate) fn at_most_one<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<Node<'a, 'i>>, SamlError> {
    let mut found = children(node, ns, name);
    let first = found.next();
    if found.next().is_some() {
        return Err(malformed(
            expected,
            format!("more than one {name} in {}", node.tag_name().name()),
        ));
    }
    Ok(first)
}

pub(crate) fn exactly_one<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
    expected: &'static str,
) -> Result<Node<'a, 'i>, SamlError> {
    at_most_one(node, ns, name, expected)?
        .ok_or_else(|| malformed(expected, format!("no {name} in {}", node.tag_name().name())))
}

/// The whole text of an element: every text child joined, comments and processing instructions
/// skipped, so `admin@corp<!---->.evil.com` reads `admin@corp.evil.com` (what the signature
/// covered), never `admin@corp`. An element child is refused: these values are text only.
pub(crate) fn text_of(node: Node<'_, '_>, expected: &'static str) -> Result<String, SamlError> {
    let mut text = String::new();
    for child in node.children() {
        if child.is_element() {
            return Err(malformed(
                expected,
                format!("{} holds an element, text expected", node.tag_name().name()),
            ));
        }
        if child.is_text() {
            text.push_str(child.text().unwrap_or_default());
        }
    }
    Ok(text.trim().to_owned())
}

/// The qualified name of an element as written in the source (`saml:Assertion`).
pub(crate) fn element_qname<'i>(node: Node<'_, 'i>) -> &'i str {
    let input = node.document().input_text();
    let start = node.range().start + 1;
    let rest = input.get(start..).unwrap_or_default();
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    rest.get(..end).unwrap_or_default()
}

pub(crate) fn prefix_of(qname: &str) -> Option<&str> {
    qname.split_once(':').map(|(p, _)| p)
}

/// Escapes character data for the documents the crate writes.
pub(crate) fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value (double-quoted) for the documents and HTML the crate writes.
pub(crate) fn escape_attr(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
    out
}
