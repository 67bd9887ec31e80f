//! The file source: users, groups and memberships from JSON or CSV files (bulk onboarding).
//!
//! **JSON**: one file `{"users": [...], "groups": [...], "memberships": [...]}`. Users and groups
//! are in idsync's SCIM-shaped form (`sourceId`, `userName`, `name.givenName`, `emails`, ...).
//! A membership is `{"group": "g1", "member": {"kind": "user", "id": "u1"}}`, or the shorter
//! `{"group": "g1", "user": "u1"}` / `{"group": "g1", "memberGroup": "g2"}`; a user may also
//! list its groups: `"groups": ["g1", "g2"]`.
//!
//! **CSV**: `users.csv` with a header row (columns in any order, names case-insensitive):
//! `sourceId` (or `id`) and `userName` are required; `externalId, givenName, familyName,
//! middleName, formatted, displayName, email, emails` (semicolon-separated), `phone, active,
//! title, department, employeeId, manager, preferredLanguage, locale, timezone, groups`
//! (semicolon-separated group ids) and `custom.<name>` columns are optional. `groups.csv`:
//! `sourceId, displayName, externalId, description`. `memberships.csv`: `group, member, kind`
//! (`user` or `group`, default `user`).
//!
//! Every read is complete or an error, never a partial snapshot. When the files are unchanged
//! since the cursor (a hash of their bytes), the read is an empty delta.

use async_trait::async_trait;
use idsync_core::{
    AttrValue, Email, Group, MemberRef, Membership, Phone, Snapshot, Source, SourceError,
    SourceRead, User,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Json,
    Csv,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSourceConfig {
    pub format: FileFormat,
    /// The JSON file.
    pub path: Option<PathBuf>,
    /// The CSV files.
    pub users: Option<PathBuf>,
    pub groups: Option<PathBuf>,
    pub memberships: Option<PathBuf>,
}

pub struct FileSource {
    cfg: FileSourceConfig,
}

impl FileSource {
    pub fn new(cfg: FileSourceConfig) -> Self {
        Self { cfg }
    }

    fn files(&self) -> Vec<&Path> {
        match self.cfg.format {
            FileFormat::Json => self.cfg.path.iter().map(PathBuf::as_path).collect(),
            FileFormat::Csv => [&self.cfg.users, &self.cfg.groups, &self.cfg.memberships]
                .into_iter()
                .flatten()
                .map(PathBuf::as_path)
                .collect(),
        }
    }

    /// Read and parse everything (blocking IO; called on a blocking thread).
    fn read_blocking(&self, cursor: Option<&str>) -> Result<SourceRead, SourceError> {
        let files = self.files();
        if files.is_empty() {
            return Err(SourceError::Invalid {
                location: "file source".into(),
                message: "no file configured".into(),
            });
        }
        let mut contents = Vec::new();
        let mut hash = Sha256::new();
        for f in &files {
            let bytes = std::fs::read(f).map_err(|e| SourceError::Io {
                path: f.display().to_string(),
                message: e.to_string(),
            })?;
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(&bytes);
            contents.push(bytes);
        }
        let fingerprint = format!("sha256:{:x}", hash.finalize());
        if cursor == Some(fingerprint.as_str()) {
            return Ok(SourceRead::Delta {
                changes: Vec::new(),
                cursor: fingerprint,
            });
        }
        let snapshot = match self.cfg.format {
            FileFormat::Json => parse_json(&contents[0], &display(files[0]))?,
            FileFormat::Csv => {
                let mut it = contents.iter();
                let users = it.next().map(Vec::as_slice).unwrap_or_default();
                let groups = self.cfg.groups.as_ref().and_then(|_| it.next());
                let memberships = self.cfg.memberships.as_ref().and_then(|_| it.next());
                parse_csv(
                    (users, &display_opt(&self.cfg.users)),
                    groups.map(|g| (g.as_slice(), display_opt(&self.cfg.groups))),
                    memberships.map(|m| (m.as_slice(), display_opt(&self.cfg.memberships))),
                )?
            }
        };
        Ok(SourceRead::Full {
            snapshot,
            cursor: Some(fingerprint),
        })
    }
}

fn display(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn display_opt(p: &Option<PathBuf>) -> String {
    p.as_deref().map(display).unwrap_or_default()
}

#[async_trait]
impl Source for FileSource {
    fn describe(&self) -> String {
        let files: Vec<String> = self
            .files()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!("file {}", files.join(", "))
    }

    async fn read(&self, cursor: Option<&str>) -> Result<SourceRead, SourceError> {
        let me = FileSource {
            cfg: self.cfg.clone(),
        };
        let cursor = cursor.map(str::to_string);
        tokio::task::spawn_blocking(move || me.read_blocking(cursor.as_deref()))
            .await
            .map_err(|e| SourceError::Unavailable(format!("file reader stopped: {e}")))?
    }
}

fn invalid(location: impl Into<String>, message: impl Into<String>) -> SourceError {
    SourceError::Invalid {
        location: location.into(),
        message: message.into(),
    }
}

// ------------------------------------------------------------------------------------ JSON

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    #[serde(default)]
    users: Vec<serde_json::Value>,
    #[serde(default)]
    groups: Vec<serde_json::Value>,
    #[serde(default)]
    memberships: Vec<JsonMembership>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonMembership {
    group: String,
    #[serde(default)]
    member: Option<MemberRef>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    member_group: Option<String>,
}

fn parse_json(bytes: &[u8], file: &str) -> Result<Snapshot, SourceError> {
    let doc: JsonFile = serde_json::from_slice(bytes).map_err(|e| {
        invalid(
            format!("{file} line {} column {}", e.line(), e.column()),
            e.to_string(),
        )
    })?;
    let mut users = Vec::with_capacity(doc.users.len());
    let mut memberships = Vec::new();
    for (i, mut v) in doc.users.into_iter().enumerate() {
        let loc = format!("{file} users[{i}]");
        let groups = match v.as_object_mut().and_then(|o| o.remove("groups")) {
            None => Vec::new(),
            Some(g) => serde_json::from_value::<Vec<String>>(g)
                .map_err(|e| invalid(&loc, format!("groups: {e}")))?,
        };
        let user: User = serde_json::from_value(v).map_err(|e| invalid(&loc, e.to_string()))?;
        for g in groups {
            memberships.push(Membership {
                group: g,
                member: MemberRef::user(user.source_id.clone()),
            });
        }
        users.push((loc, user));
    }
    let mut groups = Vec::with_capacity(doc.groups.len());
    for (i, v) in doc.groups.into_iter().enumerate() {
        let loc = format!("{file} groups[{i}]");
        let g: Group = serde_json::from_value(v).map_err(|e| invalid(&loc, e.to_string()))?;
        groups.push((loc, g));
    }
    let mut explicit = Vec::with_capacity(doc.memberships.len());
    for (i, m) in doc.memberships.into_iter().enumerate() {
        let loc = format!("{file} memberships[{i}]");
        let member = match (m.member, m.user, m.member_group) {
            (Some(r), None, None) => r,
            (None, Some(u), None) => MemberRef::user(u),
            (None, None, Some(g)) => MemberRef::group(g),
            _ => {
                return Err(invalid(
                    loc,
                    "give exactly one of \"member\", \"user\" or \"memberGroup\"",
                ))
            }
        };
        explicit.push((
            loc,
            Membership {
                group: m.group,
                member,
            },
        ));
    }
    let sugar = memberships
        .into_iter()
        .map(|m| (format!("{file} users (groups of {})", m.member.id), m));
    validate(users, groups, explicit.into_iter().chain(sugar).collect())
}

// ------------------------------------------------------------------------------------ CSV

struct Table {
    file: String,
    headers: Vec<String>,
    rows: Vec<(u64, csv::StringRecord)>,
}

impl Table {
    fn read(
        bytes: &[u8],
        file: &str,
        known: &[&str],
        allow_custom: bool,
    ) -> Result<Self, SourceError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(bytes);
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| invalid(format!("{file} line 1"), e.to_string()))?
            .iter()
            .map(|h| {
                if let Some(name) = h
                    .get(..7)
                    .filter(|p| allow_custom && p.eq_ignore_ascii_case("custom.") && h.len() > 7)
                    .and_then(|_| h.get(7..))
                {
                    format!("custom.{name}")
                } else {
                    h.to_ascii_lowercase()
                }
            })
            .collect();
        for h in &headers {
            if !(known.contains(&h.as_str()) || allow_custom && h.starts_with("custom.")) {
                return Err(invalid(
                    format!("{file} line 1"),
                    format!("unknown column {h:?} (expected: {})", known.join(", ")),
                ));
            }
        }
        let mut seen = HashSet::new();
        for h in &headers {
            if !seen.insert(h) {
                return Err(invalid(
                    format!("{file} line 1"),
                    format!("column {h:?} appears twice"),
                ));
            }
        }
        let mut rows = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                invalid(format!("{file} line {line}"), e.to_string())
            })?;
            let line = rec.position().map_or(0, |p| p.line());
            if rec.iter().all(str::is_empty) {
                continue;
            }
            rows.push((line, rec));
        }
        Ok(Self {
            file: file.to_string(),
            headers,
            rows,
        })
    }

    fn col(&self, names: &[&str]) -> Option<usize> {
        self.headers
            .iter()
            .position(|h| names.contains(&h.as_str()))
    }
}

fn field(rec: &csv::StringRecord, col: Option<usize>) -> Option<&str> {
    col.and_then(|c| rec.get(c)).filter(|s| !s.is_empty())
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "y" => Some(true),
        "false" | "no" | "0" | "n" => Some(false),
        _ => None,
    }
}

const USER_COLUMNS: &[&str] = &[
    "sourceid",
    "id",
    "username",
    "externalid",
    "givenname",
    "familyname",
    "middlename",
    "formatted",
    "displayname",
    "email",
    "emails",
    "phone",
    "active",
    "title",
    "department",
    "employeeid",
    "manager",
    "preferredlanguage",
    "locale",
    "timezone",
    "groups",
];

type CsvInput<'a> = (&'a [u8], String);

fn parse_csv(
    users_in: (&[u8], &str),
    groups_in: Option<CsvInput<'_>>,
    memberships_in: Option<CsvInput<'_>>,
) -> Result<Snapshot, SourceError> {
    let t = Table::read(users_in.0, users_in.1, USER_COLUMNS, true)?;
    let c = |names: &[&str]| t.col(names);
    let (sid, uname) = (c(&["sourceid", "id"]), c(&["username"]));
    if sid.is_none() || uname.is_none() {
        return Err(invalid(
            format!("{} line 1", t.file),
            "the columns sourceId and userName are required",
        ));
    }
    let cols: BTreeMap<&str, Option<usize>> = USER_COLUMNS.iter().map(|n| (*n, c(&[n]))).collect();
    let get = |rec: &csv::StringRecord, name: &str| {
        field(rec, cols.get(name).copied().flatten()).map(str::to_string)
    };
    let custom: Vec<(usize, String)> = t
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.strip_prefix("custom.").map(|n| (i, n.to_string())))
        .collect();
    let mut users = Vec::with_capacity(t.rows.len());
    let mut sugar = Vec::new();
    for (line, rec) in &t.rows {
        let loc = format!("{} line {line}", t.file);
        let source_id = field(rec, sid).ok_or_else(|| invalid(&loc, "sourceId is empty"))?;
        let user_name = field(rec, uname).ok_or_else(|| invalid(&loc, "userName is empty"))?;
        let mut u = User::new(source_id, user_name);
        u.external_id = get(rec, "externalid");
        u.name.given_name = get(rec, "givenname");
        u.name.family_name = get(rec, "familyname");
        u.name.middle_name = get(rec, "middlename");
        u.name.formatted = get(rec, "formatted");
        u.display_name = get(rec, "displayname");
        if let Some(e) = get(rec, "email") {
            u.emails.push(Email {
                value: e,
                kind: Some("work".into()),
                primary: true,
                display: None,
            });
        }
        if let Some(list) = get(rec, "emails") {
            for e in list.split(';').map(str::trim).filter(|e| !e.is_empty()) {
                let primary = u.emails.is_empty();
                u.emails.push(Email {
                    value: e.to_string(),
                    kind: Some("other".into()),
                    primary,
                    display: None,
                });
            }
        }
        if let Some(p) = get(rec, "phone") {
            u.phone_numbers.push(Phone {
                value: p,
                kind: Some("work".into()),
                primary: true,
                display: None,
            });
        }
        if let Some(a) = get(rec, "active") {
            u.active = parse_bool(&a)
                .ok_or_else(|| invalid(&loc, format!("active: {a:?} is not true or false")))?;
        }
        u.title = get(rec, "title");
        u.department = get(rec, "department");
        u.employee_id = get(rec, "employeeid");
        u.manager = get(rec, "manager");
        u.preferred_language = get(rec, "preferredlanguage");
        u.locale = get(rec, "locale");
        u.timezone = get(rec, "timezone");
        for (i, name) in &custom {
            if let Some(v) = field(rec, Some(*i)) {
                u.custom
                    .insert(name.clone(), AttrValue::String(v.to_string()));
            }
        }
        if let Some(list) = get(rec, "groups") {
            for g in list.split(';').map(str::trim).filter(|g| !g.is_empty()) {
                sugar.push((
                    loc.clone(),
                    Membership {
                        group: g.to_string(),
                        member: MemberRef::user(source_id),
                    },
                ));
            }
        }
        users.push((loc, u));
    }

    let mut groups = Vec::new();
    if let Some((bytes, file)) = groups_in {
        let t = Table::read(
            bytes,
            &file,
            &["sourceid", "id", "displayname", "externalid", "description"],
            false,
        )?;
        let (sid, name) = (t.col(&["sourceid", "id"]), t.col(&["displayname"]));
        if sid.is_none() || name.is_none() {
            return Err(invalid(
                format!("{file} line 1"),
                "the columns sourceId and displayName are required",
            ));
        }
        let (ext, desc) = (t.col(&["externalid"]), t.col(&["description"]));
        for (line, rec) in &t.rows {
            let loc = format!("{file} line {line}");
            let mut g = Group::new(
                field(rec, sid).ok_or_else(|| invalid(&loc, "sourceId is empty"))?,
                field(rec, name).ok_or_else(|| invalid(&loc, "displayName is empty"))?,
            );
            g.external_id = field(rec, ext).map(str::to_string);
            g.description = field(rec, desc).map(str::to_string);
            groups.push((loc, g));
        }
    }

    let mut memberships = Vec::new();
    if let Some((bytes, file)) = memberships_in {
        let t = Table::read(bytes, &file, &["group", "member", "kind"], false)?;
        let (g, m, k) = (t.col(&["group"]), t.col(&["member"]), t.col(&["kind"]));
        if g.is_none() || m.is_none() {
            return Err(invalid(
                format!("{file} line 1"),
                "the columns group and member are required",
            ));
        }
        for (line, rec) in &t.rows {
            let loc = format!("{file} line {line}");
            let group = field(rec, g).ok_or_else(|| invalid(&loc, "group is empty"))?;
            let member = field(rec, m).ok_or_else(|| invalid(&loc, "member is empty"))?;
            let member = match field(rec, k).map(str::to_ascii_lowercase).as_deref() {
                None | Some("user") => MemberRef::user(member),
                Some("group") => MemberRef::group(member),
                Some(other) => {
                    return Err(invalid(
                        &loc,
                        format!("kind: {other:?} is not user or group"),
                    ))
                }
            };
            memberships.push((
                loc,
                Membership {
                    group: group.to_string(),
                    member,
                },
            ));
        }
    }
    memberships.extend(sugar);
    validate(users, groups, memberships)
}

// ------------------------------------------------------------------------------ validation

/// Check uniqueness and references; each error names where the offending record is.
fn validate(
    users: Vec<(String, User)>,
    groups: Vec<(String, Group)>,
    memberships: Vec<(String, Membership)>,
) -> Result<Snapshot, SourceError> {
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (loc, u) in &users {
        if let Some(first) = ids.insert(u.source_id.clone(), loc.clone()) {
            return Err(invalid(
                loc,
                format!("duplicate sourceId {:?} (first at {first})", u.source_id),
            ));
        }
        if let Some(first) = names.insert(u.user_name.to_lowercase(), loc.clone()) {
            return Err(invalid(
                loc,
                format!("duplicate userName {:?} (first at {first})", u.user_name),
            ));
        }
    }
    let mut gids: HashMap<String, String> = HashMap::new();
    for (loc, g) in &groups {
        if let Some(first) = gids.insert(g.source_id.clone(), loc.clone()) {
            return Err(invalid(
                loc,
                format!(
                    "duplicate group sourceId {:?} (first at {first})",
                    g.source_id
                ),
            ));
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(memberships.len());
    for (loc, m) in memberships {
        if !gids.contains_key(&m.group) {
            return Err(invalid(
                loc,
                format!("membership names an unknown group {:?}", m.group),
            ));
        }
        let known = match m.member.kind {
            idsync_core::MemberKind::User => ids.contains_key(&m.member.id),
            idsync_core::MemberKind::Group => gids.contains_key(&m.member.id),
        };
        if !known {
            return Err(invalid(
                loc,
                format!(
                    "membership names an unknown {} {:?}",
                    m.member.kind.as_str(),
                    m.member.id
                ),
            ));
        }
        if seen.insert(m.clone()) {
            out.push(m);
        }
    }
    Ok(Snapshot {
        users: users.into_iter().map(|(_, u)| u).collect(),
        groups: groups.into_iter().map(|(_, g)| g).collect(),
        memberships: out,
    })
}
