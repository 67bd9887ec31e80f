use idsync_core::mapping::{
    apply_mapping, eval, expr, Apply, EvalError, Mapping, MappingError, Value,
};
use idsync_core::*;

fn ada() -> User {
    let mut u = User::new("obj-1", "ada.lovelace@contoso.com");
    u.display_name = Some("Ada Lovelace".into());
    u.name.given_name = Some("Ada".into());
    u.name.family_name = Some("Lovelace".into());
    u.department = Some("Analytical Engines".into());
    u.emails = vec![Email {
        value: "ada@contoso.com".into(),
        kind: Some("work".into()),
        primary: true,
        display: None,
    }];
    u.custom.insert(
        "extension_abc_costCenter".into(),
        AttrValue::String("CC-42".into()),
    );
    u.custom.insert(
        "proxyAddresses".into(),
        AttrValue::Multi(vec![
            AttrValue::String("smtp:a@contoso.com".into()),
            AttrValue::String("SMTP:ada@contoso.com".into()),
        ]),
    );
    u
}

struct Cx {
    user: User,
    taken: Vec<String>,
}
impl eval::Context for Cx {
    fn attribute(&self, name: &str) -> Value {
        mapping::get(&self.user, name)
    }
    fn is_free(&mut self, value: &str) -> bool {
        !self.taken.iter().any(|t| t == value)
    }
}

fn run_on(u: User, text: &str) -> Result<Value, EvalError> {
    let e = expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    eval::check(&e, true).unwrap_or_else(|e| panic!("{text}: {e}"));
    eval::eval(
        &e,
        &mut Cx {
            user: u,
            taken: vec!["ada".into(), "alovelace".into()],
        },
    )
}

fn s(text: &str) -> String {
    match run_on(ada(), text) {
        Ok(Value::Str(s)) => s,
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn every_function_with_its_edge_cases() {
    // Join / Append, with nulls skipped and multi-valued attributes flattened.
    assert_eq!(s(r#"Join(" ", [givenName], [surname])"#), "Ada Lovelace");
    assert_eq!(
        s(r#"Join(", ", [givenName], [nickName], [surname])"#),
        "Ada, Lovelace"
    );
    assert_eq!(
        s(r#"Join(";", [proxyAddresses])"#),
        "smtp:a@contoso.com;SMTP:ada@contoso.com"
    );
    assert_eq!(
        s(r#"Append([givenName], "@example.org")"#),
        "Ada@example.org"
    );
    assert_eq!(s(r#"AppendString([nickName], "x")"#), "x");
    // Switch and IIF, with comparisons and Entra's string booleans.
    assert_eq!(
        s(r#"Switch([department], "Other", "Sales", "S", "Analytical Engines", "AE")"#),
        "AE"
    );
    assert_eq!(s(r#"Switch([title], "none", "CEO", "C")"#), "none");
    assert_eq!(
        s(r#"Switch([accountEnabled], "x", "True", "enabled", "False", "disabled")"#),
        "enabled"
    );
    assert_eq!(s(r#"IIF([givenName]="Ada", "yes", "no")"#), "yes");
    assert_eq!(s(r#"IIF([givenName]<>"Ada", "yes", "no")"#), "no");
    assert_eq!(
        s(r#"IIF(IsPresent([title]), [title], "no title")"#),
        "no title"
    );
    assert_eq!(
        s(r#"IIF(Not(IsNullOrEmpty([department])), "has", "none")"#),
        "has"
    );
    assert!(
        run_on(ada(), r#"IIF([givenName], "a", "b")"#).is_err(),
        "a condition must be true or false"
    );
    // Coalesce.
    assert_eq!(
        s(r#"Coalesce([title], [nickName], [department], "x")"#),
        "Analytical Engines"
    );
    assert_eq!(
        run_on(ada(), "Coalesce([title], [nickName])").unwrap(),
        Value::Null
    );
    // Case, Left, Mid (Entra counts from 1), StripSpaces.
    assert_eq!(
        s("ToLower([userPrincipalName])"),
        "ada.lovelace@contoso.com"
    );
    assert_eq!(s(r#"ToUpper([surname], "en-US")"#), "LOVELACE");
    assert_eq!(s(r#"ToUpper("straße")"#), "STRASSE");
    assert_eq!(s("Left([givenName], 1)"), "A");
    assert_eq!(s("Left([givenName], 10)"), "Ada");
    assert_eq!(s("Mid([surname], 2, 3)"), "ove");
    assert_eq!(s("Mid([surname], 7, 10)"), "ce");
    assert_eq!(run_on(ada(), "Left([title], 2)").unwrap(), Value::Null);
    assert_eq!(s("StripSpaces([department])"), "AnalyticalEngines");
    // NormalizeDiacritics: accents and the letters NFD leaves alone.
    assert_eq!(
        s(r#"NormalizeDiacritics("Zoë Ærøskøbing Łódź Straße Ñandú")"#),
        "Zoe AEroskobing Lodz Strasse Nandu"
    );
    // Split gives a multi-valued result, Join takes it back.
    assert_eq!(
        run_on(ada(), r#"Split("a,b,,c", ",")"#).unwrap(),
        Value::List(vec!["a".into(), "b".into(), "".into(), "c".into()])
    );
    assert_eq!(s(r#"Join("-", Split("a,b,,c", ","))"#), "a-b-c");
    // Replace: literal, regex, and a named group (Entra's example strips the mail domain).
    assert_eq!(
        s(r#"Replace([userPrincipalName], "@contoso.com", , , "@fabrikam.com", , )"#),
        "ada.lovelace@fabrikam.com"
    );
    assert_eq!(
        s(r#"Replace([department], , "[aeiou]", , "_", , )"#),
        "An_lyt_c_l Eng_n_s"
    );
    assert_eq!(
        s(r#"Replace([mail], , "(?<Suffix>@(.)*)", "Suffix", "", , )"#),
        "ada"
    );
    assert_eq!(
        s(r#"Replace("a$b", , "\$", , "$1", , )"#),
        "a$1b",
        "the replacement is literal"
    );
    // FormatDateTime with .NET formats (AD's generalized time to ISO).
    assert_eq!(
        s(r#"FormatDateTime("20261125143005.0Z", , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")"#),
        "2026-11-25"
    );
    assert_eq!(
        s(r#"FormatDateTime("25/11/2026 09:05", "dd/MM/yyyy HH:mm", "yyyy-MM-dd'T'HH:mm:ss'Z'")"#),
        "2026-11-25T09:05:00Z"
    );
    assert!(run_on(
        ada(),
        r#"FormatDateTime("2026-13-01", , "yyyy-MM-dd", "yyyy")"#
    )
    .is_err());
    assert!(run_on(
        ada(),
        r#"FormatDateTime("yesterday", , "yyyy-MM-dd", "yyyy")"#
    )
    .is_err());
    // SelectUniqueValue tries candidates in order.
    assert_eq!(
        s(
            r#"SelectUniqueValue(ToLower([givenName]), ToLower(Join("", Left([givenName], 1), [surname])), ToLower(Join(".", [givenName], [surname])))"#
        ),
        "ada.lovelace"
    );
    assert_eq!(
        run_on(ada(), r#"SelectUniqueValue(ToLower([givenName]))"#),
        Err(EvalError::NoUniqueValue(1))
    );
    // Attributes by Graph or SCIM name, extension attributes by their source name.
    assert_eq!(s("[extension_abc_costCenter]"), "CC-42");
    assert_eq!(s("[name.familyName]"), "Lovelace");
    assert_eq!(s(r#"[emails[type eq "work"].value]"#), "ada@contoso.com");
    assert_eq!(
        run_on(ada(), "[IsSoftDeleted]").unwrap(),
        Value::Bool(false)
    );
    assert_eq!(run_on(ada(), "[noSuchAttribute]").unwrap(), Value::Null);
    // Empty and unicode inputs.
    let mut empty = User::new("obj-2", "");
    empty.display_name = Some(String::new());
    assert_eq!(
        run_on(empty.clone(), r#"Join(" ", [givenName], [surname])"#).unwrap(),
        Value::Str(String::new())
    );
    assert_eq!(
        run_on(empty, r#"Coalesce([displayName], "fallback")"#).unwrap(),
        Value::Str("fallback".into())
    );
    assert_eq!(s(r#"Left("日本語テキスト", 3)"#), "日本語");
}

#[test]
fn errors_name_the_attribute_and_the_position() {
    let rules = |pairs: &[(&str, &str)]| -> Vec<(String, String, Apply)> {
        pairs
            .iter()
            .map(|(a, e)| (a.to_string(), e.to_string(), Apply::Always))
            .collect()
    };
    let errs = Mapping::compile(&rules(&[
        ("displayName", r#"Join(" ", [givenName], [surname]"#),
        ("title", r#"Frobnicate([jobTitle])"#),
        ("department", r#"Left([department])"#),
        ("nickName", r#"Replace([x], , "(", , "y", , )"#),
        ("userName", r#"ToLower(SelectUniqueValue([a], [b]))"#),
        ("shoeSize", "[x]"),
        ("externalId", r#""unclosed"#),
    ]))
    .unwrap_err();
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 7, "{text:?}");
    assert!(
        text[0].starts_with("displayName: at column 1: the call of Join is not closed"),
        "{}",
        text[0]
    );
    assert!(
        text[1].starts_with("title: at column 1: unknown function Frobnicate"),
        "{}",
        text[1]
    );
    assert!(
        text[2].contains("Left takes 2 arguments, not 1"),
        "{}",
        text[2]
    );
    assert!(
        text[3].contains("is not a regular expression"),
        "{}",
        text[3]
    );
    assert!(
        text[4].contains("at column 9: SelectUniqueValue must be the whole expression"),
        "{}",
        text[4]
    );
    assert!(matches!(&errs[5], MappingError::UnknownTarget(t) if t == "shoeSize"));
    assert!(text[6].contains("a string is not closed"), "{}", text[6]);
    // No input panics or nests without end.
    assert!(expr::parse(&"f(".repeat(10_000)).is_err());
    for junk in [
        "",
        "(",
        "[",
        "\"",
        ",",
        "f(,",
        "[a]=",
        "IIF([a]=[b]=[c], 1, 2)",
        "-",
        "1.2.3",
    ] {
        let _ = expr::parse(junk);
    }
}

#[test]
fn a_flow_mapping_applies_on_create_only_attributes_once() {
    let mapping = Mapping::compile(&[
        (
            "displayName".to_string(),
            r#"Join(" ", [surname], [givenName])"#.to_string(),
            Apply::Always,
        ),
        (
            "userName".to_string(),
            r#"SelectUniqueValue(ToLower(Join(".", [givenName], [surname])), ToLower(Join(".", [givenName], [surname], "2")))"#.to_string(),
            Apply::OnCreate,
        ),
        (
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User:costCenterCode".to_string(),
            "[extension_abc_costCenter]".to_string(),
            Apply::Always,
        ),
    ])
    .unwrap();
    let mut twin = ada();
    twin.source_id = "obj-9".into();
    let snapshot = Snapshot {
        users: vec![ada(), twin],
        groups: vec![],
        memberships: vec![],
    };
    let mut desired = desired_state(&snapshot);
    let failed = apply_mapping(
        &mut desired,
        &LedgerState::default(),
        &mapping,
        &Default::default(),
    );
    assert!(failed.is_empty(), "{failed:?}");
    let a = &desired.users["obj-1"];
    assert_eq!(a.display_name.as_deref(), Some("Lovelace Ada"));
    assert_eq!(a.user_name, "ada.lovelace");
    // Two Ada Lovelaces: the second candidate is taken by the second one.
    assert_eq!(desired.users["obj-9"].user_name, "ada.lovelace.2");
    assert_eq!(
        a.custom
            .get("urn:ietf:params:scim:schemas:extension:acme:2.0:User:costCenterCode"),
        Some(&AttrValue::String("CC-42".into()))
    );
    // Once created, an on-create attribute keeps what the target got, while the others follow.
    let mut ledger = LedgerState::default();
    for (k, u) in &desired.users {
        ledger
            .users
            .insert(k.clone(), LedgerUser::new(format!("t-{k}"), u.clone()));
    }
    let mut renamed = ada();
    renamed.name.family_name = Some("King".into());
    let mut desired = desired_state(&Snapshot {
        users: vec![renamed],
        groups: vec![],
        memberships: vec![],
    });
    apply_mapping(&mut desired, &ledger, &mapping, &Default::default());
    assert_eq!(desired.users["obj-1"].user_name, "ada.lovelace");
    assert_eq!(
        desired.users["obj-1"].display_name.as_deref(),
        Some("King Ada")
    );
}

#[test]
fn a_user_that_cannot_be_mapped_is_left_as_the_target_has_it() {
    let mapping = Mapping::compile(&[(
        "userName".to_string(),
        r#"SelectUniqueValue([givenName])"#.to_string(),
        Apply::Always,
    )])
    .unwrap();
    let mut other = ada();
    other.source_id = "obj-2".into();
    let mut ledger = LedgerState::default();
    let mut known = ada();
    known.user_name = "Ada".into();
    ledger
        .users
        .insert("obj-2".into(), LedgerUser::new("t2", known.clone()));
    let mut desired = desired_state(&Snapshot {
        users: vec![ada(), other],
        groups: vec![],
        memberships: vec![],
    });
    let failed = apply_mapping(&mut desired, &ledger, &mapping, &Default::default());
    // obj-2 holds "Ada" already; obj-1 is new and finds no free value: left out, with why.
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].key, "obj-1");
    assert!(!desired.users.contains_key("obj-1"));
    assert_eq!(desired.users["obj-2"].user_name, "Ada");
}
