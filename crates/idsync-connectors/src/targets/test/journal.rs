//! The test target's state, and the journal that keeps it across processes: every applied
//! change is one JSON line, replayed on open.

use idsync_core::{Group, User};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::TestTargetError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Entry {
    PutUser { id: String, user: User },
    DeleteUser { id: String },
    PutGroup { id: String, group: Group },
    DeleteGroup { id: String },
    AddMembers { group: String, users: Vec<String> },
    RemoveMembers { group: String, users: Vec<String> },
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) users: BTreeMap<String, User>,
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) members: BTreeMap<String, BTreeSet<String>>,
    /// Lowercased userName, primary email and group displayName to ids, as an application's
    /// unique indexes would have them.
    pub(super) user_names: HashMap<String, BTreeSet<String>>,
    pub(super) user_emails: HashMap<String, BTreeSet<String>>,
    pub(super) group_names: HashMap<String, BTreeSet<String>>,
}

fn index(map: &mut HashMap<String, BTreeSet<String>>, key: Option<&str>, id: &str, add: bool) {
    let Some(key) = key else {
        return;
    };
    let key = key.to_lowercase();
    if add {
        map.entry(key).or_default().insert(id.to_string());
    } else if let Some(ids) = map.get_mut(&key) {
        ids.remove(id);
        if ids.is_empty() {
            map.remove(&key);
        }
    }
}

impl State {
    fn unindex_user(&mut self, id: &str) {
        if let Some(old) = self.users.get(id) {
            let (name, email) = (
                old.user_name.clone(),
                old.primary_email().map(str::to_string),
            );
            index(&mut self.user_names, Some(&name), id, false);
            index(&mut self.user_emails, email.as_deref(), id, false);
        }
    }

    pub(super) fn apply(&mut self, e: &Entry) {
        match e {
            Entry::PutUser { id, user } => {
                self.unindex_user(id);
                index(&mut self.user_names, Some(&user.user_name), id, true);
                index(&mut self.user_emails, user.primary_email(), id, true);
                self.users.insert(id.clone(), user.clone());
            }
            Entry::DeleteUser { id } => {
                self.unindex_user(id);
                self.users.remove(id);
                for set in self.members.values_mut() {
                    set.remove(id);
                }
            }
            Entry::PutGroup { id, group } => {
                if let Some(old) = self.groups.get(id) {
                    let name = old.display_name.clone();
                    index(&mut self.group_names, Some(&name), id, false);
                }
                index(&mut self.group_names, Some(&group.display_name), id, true);
                self.groups.insert(id.clone(), group.clone());
                self.members.entry(id.clone()).or_default();
            }
            Entry::DeleteGroup { id } => {
                if let Some(old) = self.groups.remove(id) {
                    index(&mut self.group_names, Some(&old.display_name), id, false);
                }
                self.members.remove(id);
            }
            Entry::AddMembers { group, users } => {
                self.members
                    .entry(group.clone())
                    .or_default()
                    .extend(users.iter().cloned());
            }
            Entry::RemoveMembers { group, users } => {
                if let Some(set) = self.members.get_mut(group) {
                    for u in users {
                        set.remove(u);
                    }
                }
            }
        }
    }

    fn lookup<'s>(
        map: &'s HashMap<String, BTreeSet<String>>,
        key: &str,
        except: Option<&str>,
    ) -> Option<&'s str> {
        map.get(&key.to_lowercase())?
            .iter()
            .map(String::as_str)
            .find(|id| Some(*id) != except)
    }

    pub(super) fn user_named(&self, name: &str, except: Option<&str>) -> Option<&str> {
        Self::lookup(&self.user_names, name, except)
    }

    pub(super) fn user_with_email(&self, email: &str) -> Option<&str> {
        Self::lookup(&self.user_emails, email, None)
    }

    pub(super) fn group_named(&self, name: &str, except: Option<&str>) -> Option<&str> {
        Self::lookup(&self.group_names, name, except)
    }
}

/// Replay a journal: the state it describes and the length of its whole lines (a torn last
/// line is not counted).
pub(super) fn replay(path: &Path) -> Result<(State, u64), TestTargetError> {
    let err = |message: String| TestTargetError::Journal {
        path: path.to_path_buf(),
        message,
    };
    let mut state = State::default();
    let mut good_len: u64 = 0;
    if path.exists() {
        let file = File::open(path).map_err(|e| err(e.to_string()))?;
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| err(e.to_string()))?;
            if n == 0 || !line.ends_with('\n') {
                break; // end, or a torn last line
            }
            match serde_json::from_str::<Entry>(line.trim_end()) {
                Ok(e) => state.apply(&e),
                Err(e) => {
                    // Only the very last line may be damaged.
                    let mut rest = String::new();
                    let more = reader
                        .read_line(&mut rest)
                        .map_err(|e| err(e.to_string()))?;
                    if more > 0 {
                        return Err(err(format!("bad entry at byte {good_len}: {e}")));
                    }
                    break;
                }
            }
            good_len += n as u64;
        }
    }
    Ok((state, good_len))
}
