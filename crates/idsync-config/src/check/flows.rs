//! Flows: `[flows.x]` with their group rules, scope and mapping.

use super::*;

impl Checker<'_> {
    pub(super) fn flow(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        anchor: &Span,
    ) -> Option<FlowConfig> {
        let path = format!("flows.{name}");
        self.keys(
            t,
            &path,
            &[
                "source",
                "target",
                "deprovision",
                "delete_after_days",
                "deprovision_memberships",
                "keep_memberships_in",
                "group_deletion",
                "group_rename",
                "member_batch",
                "concurrency",
                "max_retries",
                "full_reconcile_interval",
                "enabled",
                "deletion_threshold",
                "deletion_threshold_percent",
                "mapping",
                "scope",
                "groups",
                "inactive_after",
                "inactive_exempt",
            ],
        );
        let source = self.string(t, "source", &path);
        if source.is_none() && t.get("source").is_none() {
            self.err(
                anchor,
                &format!("{path}.source"),
                "required: the source whose directory this flow provisions",
            );
        }
        let target = self.string(t, "target", &path);
        if target.is_none() && t.get("target").is_none() {
            self.err(
                anchor,
                &format!("{path}.target"),
                "required: the target this flow provisions",
            );
        }
        let deprovision = match self
            .choice(
                t,
                "deprovision",
                &path,
                &["disable", "delete", "delete_after", "anonymize", "none"],
            )
            .as_deref()
        {
            Some("delete") => DeprovisionAction::Delete,
            Some("none") => DeprovisionAction::Nothing,
            Some("anonymize") => DeprovisionAction::Anonymize,
            Some("delete_after") => {
                let days = self.int(t, "delete_after_days", &path, 1, 3650);
                if days.is_none() && t.get("delete_after_days").is_none() {
                    let span = t.get("deprovision").and_then(Item::span);
                    self.err(
                        &span,
                        &format!("{path}.delete_after_days"),
                        "deprovision = \"delete_after\" needs delete_after_days = the grace period in days",
                    );
                }
                DeprovisionAction::DeleteAfter {
                    days: u32::try_from(days.unwrap_or(30)).unwrap_or(30),
                }
            }
            _ => DeprovisionAction::Disable,
        };
        let mut memberships = idsync_core::scope::MembershipPolicy {
            keep: self
                .choice(t, "deprovision_memberships", &path, &["remove", "keep"])
                .is_some_and(|c| c == "keep")
                || deprovision == DeprovisionAction::Nothing,
            keep_in: Vec::new(),
        };
        for (i, (p, span)) in self
            .str_array(t, "keep_memberships_in", &path)
            .into_iter()
            .enumerate()
        {
            match idsync_core::scope::GroupPattern::parse(&p) {
                Ok(g) => memberships.keep_in.push(g),
                Err(e) => self.err(
                    &span,
                    &format!("{path}.keep_memberships_in[{i}]"),
                    e.to_string(),
                ),
            }
        }
        let group_deletion = match self
            .choice(t, "group_deletion", &path, &["keep", "delete"])
            .as_deref()
        {
            Some("delete") => GroupDeletion::Delete,
            _ => GroupDeletion::Keep,
        };
        let group_rename = match self
            .choice(t, "group_rename", &path, &["keep", "recreate"])
            .as_deref()
        {
            Some("recreate") => idsync_core::GroupRename::Recreate,
            _ => idsync_core::GroupRename::Keep,
        };
        let member_batch = self.int(t, "member_batch", &path, 1, 1000).unwrap_or(100);
        let concurrency = self.int(t, "concurrency", &path, 1, 64).unwrap_or(8);
        let max_retries = self.int(t, "max_retries", &path, 0, 20).unwrap_or(5);
        let full_reconcile_interval = self.duration(t, "full_reconcile_interval", &path);
        let enabled = self.boolean(t, "enabled", &path).unwrap_or(true);
        let mapping = self.mapping(t, &path);
        let scope = self.scope(t, &path);
        let groups = self.group_rules(t, &path);
        let inactivity = self.inactivity(t, &path);
        let defaults = idsync_core::DeletionThreshold::default();
        let deletion_threshold = idsync_core::DeletionThreshold {
            count: match self.int(t, "deletion_threshold", &path, 0, 100_000_000) {
                Some(n) => usize::try_from(n).ok(),
                None => defaults.count,
            },
            percent: self
                .float(t, "deletion_threshold_percent", &path, 0.0, 100.0)
                .or(defaults.percent),
        };
        Some(FlowConfig {
            name: name.to_string(),
            source: source?,
            directory: String::new(),
            target: target?,
            deprovision,
            group_deletion,
            group_rename,
            member_batch: usize::try_from(member_batch).unwrap_or(100),
            concurrency: usize::try_from(concurrency).unwrap_or(8),
            max_retries: u32::try_from(max_retries).unwrap_or(5),
            full_reconcile_interval,
            enabled,
            deletion_threshold,
            mapping,
            scope,
            memberships,
            groups,
            inactivity,
        })
    }

    /// `[flows.x.groups]`: group rules.
    pub(super) fn group_rules(
        &mut self,
        t: &dyn TableLike,
        path: &str,
    ) -> idsync_core::groups::GroupRules {
        use idsync_core::groups::{GroupRules, Unmatched};
        use idsync_core::scope::GroupPattern;
        let mut out = GroupRules::default();
        let Some(item) = t.get("groups") else {
            return out;
        };
        let gpath = format!("{path}.groups");
        let Some(g) = item.as_table_like() else {
            self.err(&item.span(), &gpath, "expected a table of group rules");
            return out;
        };
        self.keys(
            g,
            &gpath,
            &[
                "mode",
                "map",
                "rename",
                "include",
                "exclude",
                "required",
                "default_groups",
                "default_groups_new",
                "names",
                "unmatched",
                "memberships",
            ],
        );
        out.manual = self
            .choice(g, "mode", &gpath, &["on_the_fly", "manual"])
            .is_some_and(|m| m == "manual");
        out.unmatched = match self
            .choice(
                g,
                "unmatched",
                &gpath,
                &["ignore", "keep", "clear", "leave_out"],
            )
            .as_deref()
        {
            Some("keep") => Unmatched::Keep,
            Some("clear") => Unmatched::Clear,
            Some("leave_out") => Unmatched::LeaveOut,
            _ => Unmatched::Ignore,
        };
        out.keep_manual = self
            .choice(g, "memberships", &gpath, &["authoritative", "keep_manual"])
            .is_some_and(|m| m == "keep_manual");
        let patterns = |c: &mut Self, key: &str| -> Vec<GroupPattern> {
            let mut v = Vec::new();
            for (i, (p, span)) in c.str_array(g, key, &gpath).into_iter().enumerate() {
                match GroupPattern::parse(&p) {
                    Ok(x) => v.push(x),
                    Err(e) => c.err(&span, &format!("{gpath}.{key}[{i}]"), e.to_string()),
                }
            }
            v
        };
        out.include = patterns(self, "include");
        out.exclude = patterns(self, "exclude");
        out.required = patterns(self, "required");
        out.default_all = self
            .str_array(g, "default_groups", &gpath)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        out.default_new = self
            .str_array(g, "default_groups_new", &gpath)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        // map = { "source group" = ["target", ...] } and names = { "id" = "name" }.
        for (key, is_map) in [("map", true), ("names", false)] {
            let Some(item) = g.get(key) else {
                continue;
            };
            let Some(mt) = item.as_table_like() else {
                self.err(&item.span(), &format!("{gpath}.{key}"), "expected a table");
                continue;
            };
            for (k, v) in mt.iter() {
                let kpath = format!("{gpath}.{key}.{k}");
                if is_map {
                    let targets: Option<Vec<String>> = match v.as_str() {
                        Some(one) => Some(vec![one.to_string()]),
                        None => v.as_array().map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        }),
                    };
                    match targets {
                        Some(list) if !list.is_empty() => {
                            out.map.insert(k.to_string(), list);
                        }
                        _ => self.err(
                            &v.span(),
                            &kpath,
                            "expected a target group name or a list of them",
                        ),
                    }
                } else {
                    match v.as_str() {
                        Some(name) => {
                            out.names.insert(k.to_string(), name.to_string());
                        }
                        None => self.err(&v.span(), &kpath, "expected the group's name"),
                    }
                }
            }
        }
        if let Some(item) = g.get("rename") {
            match item.as_array() {
                None => self.err(
                    &item.span(),
                    &format!("{gpath}.rename"),
                    "expected [{ pattern = \"...\", replacement = \"...\" }, ...]",
                ),
                Some(a) => {
                    for (i, r) in a.iter().enumerate() {
                        let rpath = format!("{gpath}.rename[{i}]");
                        let pair = r.as_inline_table().and_then(|it| {
                            Some((
                                it.get("pattern")?.as_str()?.to_string(),
                                it.get("replacement")?.as_str()?.to_string(),
                            ))
                        });
                        match pair {
                            None => self.err(
                                &r.span(),
                                &rpath,
                                "expected { pattern = \"...\", replacement = \"...\" }",
                            ),
                            Some((p, rep)) => match regex::Regex::new(&p) {
                                Ok(re) => out.rename.push((re, rep)),
                                Err(e) => self.err(
                                    &r.span(),
                                    &rpath,
                                    format!("{p:?} is not a regular expression: {e}"),
                                ),
                            },
                        }
                    }
                }
            }
        }
        out
    }

    /// `[[flows.x.scope]]`: clause groups. A user in any group (all its clauses hold) is in
    /// scope: `clauses = [{ attribute = "department", operator = "equals", value = "Sales" }]`.
    pub(super) fn scope(&mut self, t: &dyn TableLike, path: &str) -> idsync_core::scope::Scope {
        use idsync_core::scope::{Clause, Scope};
        let mut out = Scope::default();
        let Some(item) = t.get("scope") else {
            return out;
        };
        let tables: Vec<&dyn TableLike> = match item {
            Item::ArrayOfTables(a) => a.iter().map(|t| t as &dyn TableLike).collect(),
            Item::Value(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
                .collect(),
            _ => {
                self.err(
                    &item.span(),
                    &format!("{path}.scope"),
                    "expected [[flows.<name>.scope]] tables, each with clauses = [...]",
                );
                return out;
            }
        };
        for (g, table) in tables.into_iter().enumerate() {
            let gpath = format!("{path}.scope[{g}]");
            self.keys(table, &gpath, &["clauses"]);
            let Some(clauses) = table.get("clauses").and_then(Item::as_array) else {
                self.err(&table.get("clauses").and_then(Item::span), &format!("{gpath}.clauses"), "required: clauses = [{ attribute = \"...\", operator = \"equals\", value = \"...\" }, ...]");
                continue;
            };
            let mut group = Vec::new();
            for (i, c) in clauses.iter().enumerate() {
                let cpath = format!("{gpath}.clauses[{i}]");
                let Some(ct) = c.as_inline_table() else {
                    self.err(
                        &c.span(),
                        &cpath,
                        "expected { attribute = ..., operator = ..., value = ... }",
                    );
                    continue;
                };
                self.keys(ct, &cpath, &["attribute", "operator", "value", "values"]);
                let attribute = ct.get("attribute").and_then(Value::as_str);
                let operator = ct.get("operator").and_then(Value::as_str);
                let (Some(attribute), Some(operator)) = (attribute, operator) else {
                    self.err(&c.span(), &cpath, "needs attribute and operator");
                    continue;
                };
                let value = ct.get("value").and_then(|v| match v {
                    Value::String(s) => Some(s.value().clone()),
                    Value::Integer(n) => Some(n.value().to_string()),
                    Value::Float(f) => Some(f.value().to_string()),
                    Value::Boolean(b) => Some(b.value().to_string()),
                    _ => None,
                });
                let values: Option<Vec<String>> =
                    ct.get("values").and_then(Value::as_array).map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    });
                match Clause::new(attribute, operator, value.as_deref(), values.as_deref()) {
                    Ok(clause) => group.push(clause),
                    Err(e) => self.err(&c.span(), &cpath, e.to_string()),
                }
            }
            if !group.is_empty() {
                out.groups.push(group);
            }
        }
        out
    }

    /// `[flows.x.mapping]`: target attribute = "expression", or = { expression = "...",
    /// apply = "always" | "on_create" }. Every expression is compiled here, so its errors come
    /// with the flow, the attribute, the line and the column.
    pub(super) fn mapping(
        &mut self,
        t: &dyn TableLike,
        path: &str,
    ) -> idsync_core::mapping::Mapping {
        use idsync_core::mapping::{Apply, Mapping, MappingError};
        let mut out = Mapping::default();
        let Some(item) = t.get("mapping") else {
            return out;
        };
        let Some(mt) = item.as_table_like() else {
            self.err(
                &item.span(),
                &format!("{path}.mapping"),
                "expected a table: target attribute = \"expression\"",
            );
            return out;
        };
        for (attr, v) in mt.iter() {
            let key = format!("{path}.mapping.{attr}");
            let span = v.span();
            let (text, apply) = if let Some(s) = v.as_str() {
                (s.to_string(), Apply::Always)
            } else if let Some(it) = v.as_table_like() {
                self.keys(it, &key, &["expression", "apply"]);
                let Some(text) = it.get("expression").and_then(Item::as_str) else {
                    self.err(
                        &span,
                        &format!("{key}.expression"),
                        "required: the expression",
                    );
                    continue;
                };
                let apply = match self
                    .choice(it, "apply", &key, &["always", "on_create"])
                    .as_deref()
                {
                    Some("on_create") => Apply::OnCreate,
                    _ => Apply::Always,
                };
                (text.to_string(), apply)
            } else {
                self.err(
                    &span,
                    &key,
                    "expected \"expression\" or { expression = \"...\", apply = \"on_create\" }",
                );
                continue;
            };
            match Mapping::compile(&[(attr.to_string(), text, apply)]) {
                Ok(m) => out.rules.extend(m.rules),
                Err(errors) => {
                    for e in errors {
                        let message = match e {
                            MappingError::Expression { error, .. } => error.to_string(),
                            other => other.to_string(),
                        };
                        self.err(&span, &key, message);
                    }
                }
            }
        }
        out
    }

    // ------------------------------------------------------------------ helpers
}
