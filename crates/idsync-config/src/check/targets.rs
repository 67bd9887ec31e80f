//! Targets: `[targets.x]` of each type, and the SCIM target's `omit` and test `fail_every`.

use super::*;

impl Checker<'_> {
    pub(super) fn target(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        anchor: &Span,
    ) -> Option<TargetConfig> {
        let path = format!("targets.{name}");
        let kind = self.required_choice(t, "type", &path, TARGET_TYPES, anchor)?;
        match kind.as_str() {
            "crowd" => self.crowd_target(name, t, &path),
            "jira" => self.jira_target(name, t, anchor),
            "confluence" => self.confluence_target(name, t, anchor),
            "bamboo" => self.bamboo_target(name, t, anchor),
            "bitbucket" => self.bitbucket_target(name, t, anchor),
            "scim" => {
                self.keys(
                    t,
                    &path,
                    &[
                        "type",
                        "url",
                        "token",
                        "profile",
                        "user_match",
                        "member_batch",
                        "verified_domains",
                        "timeout",
                        "max_rate",
                        "omit",
                        "required_name_formatted",
                        "members_in_create",
                    ],
                );
                let url = self.non_empty(t, "url", &path, "the service's SCIM base URL");
                if url.is_none() && t.get("url").is_none() {
                    self.err(anchor, &format!("{path}.url"), "required: the service's SCIM base URL (Atlassian Cloud: https://api.atlassian.com/scim/directory/<id>)");
                }
                if let Some(u) = &url {
                    if !(u.starts_with("https://") || u.starts_with("http://")) {
                        let span = t.get("url").and_then(Item::span);
                        self.err(
                            &span,
                            &format!("{path}.url"),
                            format!("{u:?} is not an http(s) URL"),
                        );
                    }
                }
                let token = self.non_empty(t, "token", &path, "the bearer token");
                if token.is_none() && t.get("token").is_none() {
                    self.err(
                        anchor,
                        &format!("{path}.token"),
                        "required: the bearer token, as ${env:NAME} or ${file:PATH}",
                    );
                }
                let profile = match self
                    .choice(t, "profile", &path, &["generic", "atlassian-cloud"])
                    .as_deref()
                {
                    Some("atlassian-cloud") => ScimProfile::AtlassianCloud,
                    _ => ScimProfile::Generic,
                };
                let matches = self.str_array(t, "user_match", &path);
                let mut user_match = Vec::new();
                for (i, (m, span)) in matches.iter().enumerate() {
                    match m.as_str() {
                        "userName" => user_match.push(UserMatch::UserName),
                        "email" => user_match.push(UserMatch::Email),
                        other => self.err(
                            span,
                            &format!("{path}.user_match[{i}]"),
                            format!("{other:?} is not one of: userName, email"),
                        ),
                    }
                }
                if t.get("user_match").is_none() {
                    user_match = match profile {
                        // Atlassian Cloud matches users by email.
                        ScimProfile::AtlassianCloud => vec![UserMatch::Email, UserMatch::UserName],
                        ScimProfile::Generic => vec![UserMatch::UserName, UserMatch::Email],
                    };
                }
                let member_batch = self.int(t, "member_batch", &path, 1, 1000).unwrap_or(100);
                let verified_domains = self
                    .str_array(t, "verified_domains", &path)
                    .into_iter()
                    .map(|(d, _)| d)
                    .collect();
                let timeout = self
                    .duration(t, "timeout", &path)
                    .unwrap_or(Duration::from_secs(30));
                let max_rate = self
                    .float(t, "max_rate", &path, 0.0, 100_000.0)
                    .unwrap_or(0.0);
                let omit = self.omit(t, &path);
                let required_name_formatted = self
                    .boolean(t, "required_name_formatted", &path)
                    .unwrap_or(false);
                if required_name_formatted
                    && omit.iter().any(|o| o == "name" || o == "name.formatted")
                {
                    self.err(
                        &t.get("required_name_formatted").and_then(Item::span),
                        &format!("{path}.required_name_formatted"),
                        "cannot be true while omit leaves name.formatted out",
                    );
                }
                let members_in_create = self.boolean(t, "members_in_create", &path).unwrap_or(true);
                Some(TargetConfig {
                    name: name.to_string(),
                    max_rate,
                    kind: TargetKind::Scim(ScimTargetConfig {
                        url: url?.trim_end_matches('/').to_string(),
                        token: Secret::new(token?),
                        profile,
                        user_match,
                        member_batch: usize::try_from(member_batch).unwrap_or(100),
                        verified_domains,
                        timeout,
                        omit,
                        required_name_formatted,
                        members_in_create,
                    }),
                })
            }
            "test" => {
                self.keys(
                    t,
                    &path,
                    &[
                        "type",
                        "journal",
                        "fail_rate",
                        "reject_user_names",
                        "accept_rate",
                        "max_rate",
                        "drop_attributes",
                        "compute_attributes",
                        "no_patch",
                        "fail_every",
                        "refuse_attributes",
                        "members_in_create",
                        "requires_members_on_create",
                    ],
                );
                let journal = self
                    .non_empty(t, "journal", &path, "the journal file")
                    .map(|p| self.base.join(p));
                if journal.is_none() && t.get("journal").is_none() {
                    self.err(
                        anchor,
                        &format!("{path}.journal"),
                        "required: the file where the test target keeps its state",
                    );
                }
                let fail_rate = self.float(t, "fail_rate", &path, 0.0, 1.0).unwrap_or(0.0);
                let reject_user_names = self.str_array(t, "reject_user_names", &path);
                for (i, (p, span)) in reject_user_names.iter().enumerate() {
                    if let Err(e) = regex::Regex::new(p) {
                        self.err(
                            span,
                            &format!("{path}.reject_user_names[{i}]"),
                            format!("invalid regular expression: {}", one_line(&e.to_string())),
                        );
                    }
                }
                let accept_rate = self.int(t, "accept_rate", &path, 0, 1_000_000).unwrap_or(0);
                let mut quirk = |key: &str, known: &[&str]| -> Vec<String> {
                    let values = self.str_array(t, key, &path);
                    for (i, (v, span)) in values.iter().enumerate() {
                        if !known.contains(&v.as_str()) {
                            self.err(
                                span,
                                &format!("{path}.{key}[{i}]"),
                                format!("unknown attribute {v:?} (one of: {})", known.join(", ")),
                            );
                        }
                    }
                    values.into_iter().map(|(v, _)| v).collect()
                };
                let drop_attributes = quirk(
                    "drop_attributes",
                    &["title", "department", "emails.type", "externalId"],
                );
                let compute_attributes = quirk("compute_attributes", &["name.formatted"]);
                let refuse_attributes = quirk("refuse_attributes", OMITTABLE_USER_ATTRIBUTES);
                let no_patch = self.boolean(t, "no_patch", &path).unwrap_or(false);
                let members_in_create =
                    self.boolean(t, "members_in_create", &path).unwrap_or(false);
                let requires_members_on_create = self
                    .boolean(t, "requires_members_on_create", &path)
                    .unwrap_or(false);
                let fail_every = self.fail_every(t, &path);
                let max_rate = self
                    .float(t, "max_rate", &path, 0.0, 100_000.0)
                    .unwrap_or(0.0);
                Some(TargetConfig {
                    name: name.to_string(),
                    max_rate,
                    kind: TargetKind::Test(TestTargetConfig {
                        journal: journal?,
                        fail_rate,
                        reject_user_names: reject_user_names.into_iter().map(|(p, _)| p).collect(),
                        accept_rate: u32::try_from(accept_rate).unwrap_or(0),
                        drop_attributes,
                        compute_attributes,
                        no_patch,
                        fail_every,
                        refuse_attributes,
                        members_in_create,
                        requires_members_on_create,
                    }),
                })
            }
            _ => None,
        }
    }

    /// A SCIM target's `omit`: user attributes never sent, each known and optional.
    pub(super) fn omit(&mut self, t: &dyn TableLike, path: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, (a, span)) in self.str_array(t, "omit", path).into_iter().enumerate() {
            let key = format!("{path}.omit[{i}]");
            if crate::OMITTABLE_USER_ATTRIBUTES.contains(&a.as_str()) {
                if !out.contains(&a) {
                    out.push(a);
                }
                continue;
            }
            let top = a.split('.').next().unwrap_or("");
            let message = if ["userName", "active", "id", "schemas", "meta"].contains(&top) {
                format!(
                    "{a:?} cannot be left out: idsync matches, deprovisions and reads users by it"
                )
            } else {
                format!(
                    "{a:?} is not a user attribute idsync sends (one of: {})",
                    crate::OMITTABLE_USER_ATTRIBUTES.join(", ")
                )
            };
            self.err(&span, &key, message);
        }
        out
    }

    /// The test target's `fail_every` table: operation kind = "STATUS detail".
    pub(super) fn fail_every(
        &mut self,
        t: &dyn TableLike,
        path: &str,
    ) -> Vec<(String, u16, String)> {
        const KINDS: [&str; 8] = [
            "create_user",
            "update_user",
            "delete_user",
            "create_group",
            "update_group",
            "delete_group",
            "add_members",
            "remove_members",
        ];
        let Some(item) = t.get("fail_every") else {
            return Vec::new();
        };
        let key = format!("{path}.fail_every");
        let Some(table) = item.as_table_like() else {
            self.err(
                &item.span(),
                &key,
                "a table of operation kind = \"STATUS detail\"",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (kind, v) in table.iter() {
            let span = v.span();
            if !KINDS.contains(&kind) {
                self.err(
                    &span,
                    &format!("{key}.{kind}"),
                    format!("not an operation kind: one of {}", KINDS.join(", ")),
                );
                continue;
            }
            let parsed = v.as_str().and_then(|s| {
                let (status, detail) = s.trim().split_once(' ').unwrap_or((s.trim(), ""));
                let status: u16 = status.parse().ok().filter(|n| (400..600).contains(n))?;
                Some((status, detail.trim().to_string()))
            });
            match parsed {
                Some((status, detail)) => out.push((kind.to_string(), status, detail)),
                None => self.err(
                    &span,
                    &format!("{key}.{kind}"),
                    "\"STATUS detail\" with an HTTP status from 400 to 599",
                ),
            }
        }
        out
    }
}
