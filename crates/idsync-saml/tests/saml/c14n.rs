//! Our exclusive c14n against lxml's (libxml2's), on documents that exercise its rules.

use serde_json::json;

use crate::support::peer;

fn lxml(xml: &str, with_comments: bool, prefixes: &[&str]) -> String {
    peer(
        "c14n",
        &json!({"xml": xml, "with_comments": with_comments, "prefixes": prefixes}),
    )["c14n"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn exclusive_c14n_matches_libxml2() {
    let documents = [
        // Unused declarations dropped, used ones moved down; attributes sorted by namespace URI.
        r#"<a:root xmlns:a="urn:a" xmlns:b="urn:b" xmlns:unused="urn:u" b:z="1" y="2" a:x="3"><b:child   attr='v' >t&amp;&lt;&gt;"'</b:child><!-- c --><?pi data?></a:root>"#,
        // Default namespace, undeclared below, redeclared; empty elements expanded.
        "<root xmlns=\"urn:d\"><x xmlns=\"\"><y/></x><z xmlns=\"urn:other\"/><w/></root>",
        // Whitespace, CR in attributes and text (as character references), CDATA.
        "<r a=\"x&#13;&#10;y&#9;z\">\n  <![CDATA[<raw> & ]]>\r\n  line&#13;</r>",
        // xml: attributes, same prefix rebound below.
        r#"<p:r xmlns:p="urn:1" xml:lang="en"><p:s xmlns:p="urn:2" xml:space="preserve"><p:t/></p:s></p:r>"#,
        // A SAML-like assertion with a signature in the default xmldsig namespace.
        r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="_a"><saml:Issuer>i</saml:Issuer><Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/></Signature><saml:NameID>admin@corp<!---->.evil.com</saml:NameID></saml:Assertion>"#,
    ];
    for xml in documents {
        for with_comments in [false, true] {
            let ours = idsync_saml::canonicalize_exclusive(xml, with_comments, &[]).unwrap();
            assert_eq!(
                ours,
                lxml(xml, with_comments, &[]),
                "{xml} (comments: {with_comments})"
            );
        }
    }
    // The InclusiveNamespaces PrefixList renders listed prefixes in scope.
    let xml = r#"<a:r xmlns:a="urn:a" xmlns:xs="urn:xs" xmlns="urn:d"><a:c/></a:r>"#;
    let ours = idsync_saml::canonicalize_exclusive(xml, false, &["xs"]).unwrap();
    assert_eq!(ours, lxml(xml, false, &["xs"]));
}

#[test]
fn documents_with_a_dtd_or_entities_are_refused() {
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>"#;
    assert!(matches!(
        idsync_saml::canonicalize_exclusive(bomb, false, &[]),
        Err(idsync_saml::SamlError::Xml(_))
    ));
    let external = r#"<!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>"#;
    assert!(matches!(
        idsync_saml::canonicalize_exclusive(external, false, &[]),
        Err(idsync_saml::SamlError::Xml(_))
    ));
    let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
    assert!(matches!(
        idsync_saml::canonicalize_exclusive(&deep, false, &[]),
        Err(idsync_saml::SamlError::Xml(_))
    ));
}
