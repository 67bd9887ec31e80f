//! Exclusive XML Canonicalization 1.0 (<https://www.w3.org/TR/xml-exc-c14n/>), with and without
//! comments, of an element's subtree, optionally leaving one descendant out (the enveloped
//! signature). Namespace declarations are rendered where visibly used (the element's prefix,
//! its attributes' prefixes) or listed in the InclusiveNamespaces PrefixList, and only when an
//! output ancestor has not rendered the same binding.

use roxmltree::{Node, NodeId};

use crate::error::SamlError;
use crate::xml::{element_qname, prefix_of};

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// How to canonicalize.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    pub with_comments: bool,
    /// The InclusiveNamespaces PrefixList (`#default` for the default namespace).
    pub inclusive_prefixes: Vec<String>,
    /// A descendant left out with its subtree (the enveloped-signature transform).
    pub exclude: Option<NodeId>,
}

/// The canonical form of `element`'s subtree.
pub(crate) fn canonicalize(element: Node<'_, '_>, options: &Options) -> Result<String, SamlError> {
    let mut out = String::new();
    // Namespace bindings rendered by output ancestors, innermost last: (prefix, uri); "" is the
    // default namespace.
    let mut rendered: Vec<Vec<(String, String)>> = Vec::new();
    write_element(element, options, &mut rendered, &mut out)?;
    Ok(out)
}

fn rendered_value<'r>(rendered: &'r [Vec<(String, String)>], prefix: &str) -> Option<&'r str> {
    rendered.iter().rev().find_map(|level| {
        level
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, u)| u.as_str())
    })
}

fn write_element(
    node: Node<'_, '_>,
    options: &Options,
    rendered: &mut Vec<Vec<(String, String)>>,
    out: &mut String,
) -> Result<(), SamlError> {
    let qname = element_qname(node);
    // Prefixes this element uses visibly, then those of the inclusive list.
    let mut wanted: Vec<String> = vec![prefix_of(qname).unwrap_or("").to_owned()];
    let mut attributes = Vec::new();
    for attribute in node.attributes() {
        let range = attribute.range_qname();
        let attr_qname = node.document().input_text().get(range).unwrap_or_default();
        if let Some(prefix) = prefix_of(attr_qname) {
            if prefix != "xml" {
                wanted.push(prefix.to_owned());
            }
        }
        attributes.push((
            attribute.namespace().unwrap_or(""),
            attribute.name(),
            attr_qname,
            attribute.value(),
        ));
    }
    for prefix in &options.inclusive_prefixes {
        let prefix = if prefix == "#default" {
            ""
        } else {
            prefix.as_str()
        };
        let in_scope = if prefix.is_empty() {
            node.default_namespace().is_some()
        } else {
            node.lookup_namespace_uri(Some(prefix)).is_some()
        };
        if in_scope {
            wanted.push(prefix.to_owned());
        }
    }
    wanted.sort();
    wanted.dedup();

    let mut declarations: Vec<(String, String)> = Vec::new();
    for prefix in wanted {
        let uri = if prefix.is_empty() {
            node.default_namespace().unwrap_or("")
        } else {
            node.lookup_namespace_uri(Some(prefix.as_str()))
                .ok_or_else(|| SamlError::Xml(format!("prefix {prefix} is not declared")))?
        };
        if uri == XML_NS {
            continue;
        }
        let already = rendered_value(rendered, &prefix);
        let render = if prefix.is_empty() && uri.is_empty() {
            // xmlns="" only undoes a default namespace an output ancestor rendered.
            already.is_some_and(|u| !u.is_empty())
        } else {
            already != Some(uri)
        };
        if render {
            declarations.push((prefix, uri.to_owned()));
        }
    }

    out.push('<');
    out.push_str(qname);
    for (prefix, uri) in &declarations {
        if prefix.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(prefix);
            out.push_str("=\"");
        }
        escape_attr(uri, out);
        out.push('"');
    }
    attributes.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (_, _, attr_qname, value) in &attributes {
        out.push(' ');
        out.push_str(attr_qname);
        out.push_str("=\"");
        escape_attr(value, out);
        out.push('"');
    }
    out.push('>');

    rendered.push(declarations);
    for child in node.children() {
        if Some(child.id()) == options.exclude {
            continue;
        }
        if child.is_element() {
            write_element(child, options, rendered, out)?;
        } else if child.is_text() {
            escape_text(child.text().unwrap_or_default(), out);
        } else if child.is_comment() {
            if options.with_comments {
                out.push_str("<!--");
                out.push_str(child.text().unwrap_or_default());
                out.push_str("-->");
            }
        } else if let Some(pi) = child.pi() {
            out.push_str("<?");
            out.push_str(pi.target);
            if let Some(value) = pi.value {
                out.push(' ');
                out.push_str(value);
            }
            out.push_str("?>");
        }
    }
    rendered.pop();

    out.push_str("</");
    out.push_str(qname);
    out.push('>');
    Ok(())
}

fn escape_text(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

fn escape_attr(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}
