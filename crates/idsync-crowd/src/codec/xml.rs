//! XML as Crowd writes and reads it: a small writer for the answers and a reader for the
//! POSTed search restrictions.

use crate::error::CrowdError;
use crate::restriction::{bad, MatchMode, PropertyType, Restriction, MAX_DEPTH};
use quick_xml::events::Event as XmlEvent;
use quick_xml::{Reader, XmlVersion};

/// The XML declaration Crowd starts its answers with.
pub const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>";

/// Text escaped for XML content and attribute values. Characters XML 1.0 cannot carry (most
/// control characters) are dropped, as Crowd strips them.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// [`escape`] appending to `out`.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

/// An XML document written into a string.
pub struct XmlOut {
    pub buf: String,
}

impl XmlOut {
    pub fn new() -> XmlOut {
        XmlOut {
            buf: String::from(DECLARATION),
        }
    }

    /// `<name a="v" ...>`
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start(name, attrs);
        self.buf.push('>');
    }

    /// `<name a="v" .../>`
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start(name, attrs);
        self.buf.push_str("/>");
    }

    fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.buf.push('<');
        self.buf.push_str(name);
        for (k, v) in attrs {
            self.buf.push(' ');
            self.buf.push_str(k);
            self.buf.push_str("=\"");
            escape_into(&mut self.buf, v);
            self.buf.push('"');
        }
    }

    /// `</name>`
    pub fn close(&mut self, name: &str) {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
    }

    /// `<name>text</name>`
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.open(name, &[]);
        escape_into(&mut self.buf, text);
        self.close(name);
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf.into_bytes()
    }
}

impl Default for XmlOut {
    fn default() -> Self {
        XmlOut::new()
    }
}

/// An element read from a body.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

fn local(name: &str) -> String {
    match name.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => name.to_string(),
    }
}

fn element(start: &quick_xml::events::BytesStart<'_>) -> Result<Node, CrowdError> {
    let invalid = |e: &dyn std::fmt::Display| bad(format!("the XML body is not well formed: {e}"));
    let mut node = Node {
        name: local(start.local_name().as_ref()),
        ..Node::default()
    };
    for a in start.attributes() {
        let a = a.map_err(|e| invalid(&e))?;
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| invalid(&e))?;
        node.attrs
            .push((local(a.key.local_name().as_ref()), value.into_owned()));
    }
    Ok(node)
}

/// The root element of an XML body, with its whole tree (nested at most `max_depth` deep).
fn read_tree(body: &[u8], max_depth: usize) -> Result<Node, CrowdError> {
    let text = std::str::from_utf8(body).map_err(|_| bad("the XML body is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let invalid = |e: &dyn std::fmt::Display| bad(format!("the XML body is not well formed: {e}"));
    let mut stack: Vec<Node> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| invalid(&e))? {
            XmlEvent::Start(s) => {
                if stack.len() >= max_depth {
                    return Err(bad(format!(
                        "the XML body nests deeper than {max_depth} elements"
                    )));
                }
                stack.push(element(&s)?);
            }
            XmlEvent::Empty(s) => {
                let node = element(&s)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            XmlEvent::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| bad("the XML body is not well formed"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            XmlEvent::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                }
            }
            XmlEvent::CData(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                }
            }
            XmlEvent::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| invalid(&e))? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| {
                            bad(format!("the XML body names an unknown entity &{};", &*r))
                        })?
                        .to_string(),
                };
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&resolved);
                }
            }
            XmlEvent::Eof => return Err(bad("the XML body has no root element or is cut short")),
            XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) | XmlEvent::DocType(_) => {}
        }
    }
}

/// A POSTed search restriction in XML: `<property-search-restriction>`,
/// `<boolean-search-restriction boolean-logic="and"><restrictions>...</restrictions>...`,
/// `<null-search-restriction/>`.
pub fn parse_restriction(body: &[u8]) -> Result<Restriction, CrowdError> {
    // A boolean restriction takes two elements per level (itself and <restrictions>).
    let root = read_tree(body, 2 * MAX_DEPTH + 4)?;
    restriction(&root, 0)
}

fn restriction(node: &Node, depth: usize) -> Result<Restriction, CrowdError> {
    if depth > MAX_DEPTH {
        return Err(bad(format!(
            "the search restriction nests deeper than {MAX_DEPTH}"
        )));
    }
    match node.name.as_str() {
        "null-search-restriction" => Ok(Restriction::All),
        "property-search-restriction" => {
            let property = node
                .child("property")
                .ok_or_else(|| bad("a property-search-restriction has no <property>"))?;
            let name = property.child("name").map(|n| n.text.trim()).unwrap_or("");
            let kind = match property.child("type") {
                Some(t) => PropertyType::parse(&t.text)
                    .ok_or_else(|| bad(format!("{:?} is an unsupported type", t.text.trim())))?,
                None => PropertyType::String,
            };
            let mode_text = node
                .child("match-mode")
                .map(|m| m.text.as_str())
                .unwrap_or("");
            let mode = MatchMode::parse(mode_text)
                .ok_or_else(|| bad(format!("{:?} is not a match mode", mode_text.trim())))?;
            let value = node.child("value").map(|v| v.text.as_str());
            Restriction::property(name, kind, mode, value)
        }
        "boolean-search-restriction" => {
            let logic = node.attr("boolean-logic").unwrap_or("");
            let wrapper = node.child("restrictions");
            let children: Vec<&Node> = match wrapper {
                Some(w) => w.children.iter().collect(),
                None => node.children.iter().collect(),
            };
            let parts = children
                .into_iter()
                .map(|c| restriction(c, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            boolean(logic, parts)
        }
        other => Err(bad(format!("<{other}> is not a search restriction"))),
    }
}

/// An `and`/`or` of restrictions (Crowd's `boolean-logic`, any case).
pub(crate) fn boolean(logic: &str, parts: Vec<Restriction>) -> Result<Restriction, CrowdError> {
    if logic.trim().eq_ignore_ascii_case("and") {
        Ok(Restriction::And(parts))
    } else if logic.trim().eq_ignore_ascii_case("or") {
        Ok(Restriction::Or(parts))
    } else {
        Err(bad(format!("{logic:?} is not a boolean logic (AND or OR)")))
    }
}
