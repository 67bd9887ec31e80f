//! Crowd events: what changed in the served directory, in order, behind `event` (the current
//! token) and `event/{token}` (the events since a token).
//!
//! The front-end keeps the log per target in its store: an `epoch` (a string that changes when
//! the log restarts, e.g. after the target's ledger was replaced) and events numbered by a
//! sequence it assigns. A token is `<epoch>:<seq>`, the sequence of the last event the client
//! has seen. A token of another epoch, one older than the oldest event kept, one from the future,
//! or one that is not a token at all answers `EVENT_TOKEN_EXPIRED`, and so does a token with
//! more than [`MAX_EVENTS_PER_ANSWER`] events after it: the product then synchronises in full,
//! as it does with Crowd (status 410, reason `EVENT_TOKEN_EXPIRED`).
//!
//! Crowd's event feed has no rename: a user or group renamed after a token makes that token
//! expire too, so the product synchronises in full and matches the renamed user by its `key`.

use crate::error::{CrowdError, ErrorReason};
use crate::model::{CrowdGroup, CrowdUser};
use idsync_core::{Group, User};
use serde::{Deserialize, Serialize};

/// More events than this since a token answer `EVENT_TOKEN_EXPIRED` (a full synchronisation is
/// cheaper than replaying them).
pub const MAX_EVENTS_PER_ANSWER: usize = 10_000;

/// One change of the served directory. The front-end stores it as JSON (serde) and loads it
/// back; build it with the constructors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    UserCreated {
        user: CrowdUser,
    },
    /// The user as it is after the change. `old_name` is set when the change renamed it;
    /// `deleted_attributes` names the attributes it no longer has.
    UserUpdated {
        user: CrowdUser,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old_name: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deleted_attributes: Vec<String>,
    },
    UserDeleted {
        name: String,
        key: String,
    },
    GroupCreated {
        group: CrowdGroup,
    },
    GroupUpdated {
        group: CrowdGroup,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old_name: Option<String>,
    },
    GroupDeleted {
        name: String,
    },
    /// `user` became a direct member of `group` (names).
    MembershipCreated {
        group: String,
        user: String,
    },
    MembershipDeleted {
        group: String,
        user: String,
    },
    /// `child` became a direct member group of `parent` (nested groups, decision 0033).
    ChildGroupCreated {
        parent: String,
        child: String,
    },
    ChildGroupDeleted {
        parent: String,
        child: String,
    },
}

impl Event {
    /// Whether the event renames a user or a group (Crowd's feed cannot carry that).
    pub fn is_rename(&self) -> bool {
        matches!(
            self,
            Event::UserUpdated {
                old_name: Some(_),
                ..
            } | Event::GroupUpdated {
                old_name: Some(_),
                ..
            }
        )
    }

    /// The user served under ledger key `key` was created.
    pub fn user_created(key: &str, user: &User) -> Event {
        Event::UserCreated {
            user: CrowdUser::from_user(key, user, None),
        }
    }

    /// The user under `key` changed from `before` to `after`: no event when nothing Crowd
    /// serves changed (an attribute Crowd does not show), else one update (naming the old name
    /// when it was renamed).
    pub fn user_updated(key: &str, before: &User, after: &User) -> Vec<Event> {
        let old = CrowdUser::from_user(key, before, None);
        let new = CrowdUser::from_user(key, after, None);
        if old == new {
            return Vec::new();
        }
        let deleted_attributes = old
            .attributes
            .keys()
            .filter(|k| !new.attributes.contains_key(*k))
            .cloned()
            .collect();
        let old_name = (old.name != new.name).then_some(old.name);
        vec![Event::UserUpdated {
            user: new,
            old_name,
            deleted_attributes,
        }]
    }

    /// The user under `key` is no longer served (deleted, or left the flow's scope).
    pub fn user_deleted(key: &str, user: &User) -> Event {
        Event::UserDeleted {
            name: user.user_name.clone(),
            key: key.to_string(),
        }
    }

    pub fn group_created(group: &Group) -> Event {
        Event::GroupCreated {
            group: CrowdGroup::from_group(group),
        }
    }

    /// As [`Event::user_updated`], for a group.
    pub fn group_updated(before: &Group, after: &Group) -> Vec<Event> {
        let old = CrowdGroup::from_group(before);
        let new = CrowdGroup::from_group(after);
        if old == new {
            return Vec::new();
        }
        let old_name = (old.name != new.name).then_some(old.name);
        vec![Event::GroupUpdated {
            group: new,
            old_name,
        }]
    }

    pub fn group_deleted(group: &Group) -> Event {
        Event::GroupDeleted {
            name: group.display_name.clone(),
        }
    }

    /// `user` became a member of `group`.
    pub fn membership_created(group: &Group, user: &User) -> Event {
        Event::MembershipCreated {
            group: group.display_name.clone(),
            user: user.user_name.clone(),
        }
    }

    pub fn membership_deleted(group: &Group, user: &User) -> Event {
        Event::MembershipDeleted {
            group: group.display_name.clone(),
            user: user.user_name.clone(),
        }
    }
}

/// Nested groups (decision 0033): the constructors of the group-in-group events.
impl Event {
    /// `child` became a direct member group of `parent`.
    pub fn child_group_created(parent: &Group, child: &Group) -> Event {
        Event::ChildGroupCreated {
            parent: parent.display_name.clone(),
            child: child.display_name.clone(),
        }
    }

    /// `child` is no longer a direct member group of `parent`.
    pub fn child_group_deleted(parent: &Group, child: &Group) -> Event {
        Event::ChildGroupDeleted {
            parent: parent.display_name.clone(),
            child: child.display_name.clone(),
        }
    }
}

/// The events of one target, in order, from `first_seq` on.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    epoch: String,
    first_seq: i64,
    last_seq: i64,
    /// The sequence of the last rename: tokens before it have expired.
    last_rename: Option<i64>,
    events: Vec<(i64, Event)>,
}

/// The answer to `event/{token}`: the events after the token and the token to ask with next.
#[derive(Debug, Clone)]
pub struct Since<'a> {
    pub events: &'a [(i64, Event)],
    pub new_token: String,
}

impl EventLog {
    /// An empty log of `epoch` whose first event will carry `first_seq` or more: the events
    /// before it are gone, so a token older than `first_seq - 1` has expired.
    pub fn new(epoch: String, first_seq: i64) -> EventLog {
        let last_seq = first_seq.saturating_sub(1);
        EventLog {
            epoch,
            first_seq,
            last_seq,
            last_rename: None,
            events: Vec::new(),
        }
    }

    /// Append an event. Sequences must not go down: several events may share one sequence
    /// (one ledger transaction), and a client's token then always falls between transactions.
    /// An event with a lower sequence than the last is dropped.
    pub fn push(&mut self, seq: i64, event: Event) {
        if seq < self.last_seq || seq < self.first_seq {
            return;
        }
        if event.is_rename() {
            self.last_rename = Some(seq);
        }
        self.last_seq = seq;
        self.events.push((seq, event));
    }

    /// The token naming "now": the events after it are those pushed from here on.
    pub fn current_token(&self) -> String {
        token(&self.epoch, self.last_seq)
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The sequence of the last event (or `first_seq - 1` when there is none).
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events after `token` and the token to ask with next, or `EVENT_TOKEN_EXPIRED` as Crowd answers a token it cannot
    /// serve from (the client then synchronises in full).
    pub fn since(&self, token_text: &str) -> Result<Since<'_>, CrowdError> {
        let expired = || {
            CrowdError::new(
                410,
                ErrorReason::EventTokenExpired,
                "Incremental synchronisation is not available for this event token",
            )
        };
        let (epoch, seq) = token_text.rsplit_once(':').ok_or_else(expired)?;
        let seq: i64 = seq.parse().map_err(|_| expired())?;
        if epoch != self.epoch || seq < self.first_seq.saturating_sub(1) || seq > self.last_seq {
            return Err(expired());
        }
        if self.last_rename.is_some_and(|r| r > seq) {
            return Err(expired());
        }
        let start = self.events.partition_point(|(s, _)| *s <= seq);
        let events = self.events.get(start..).unwrap_or(&[]);
        if events.len() > MAX_EVENTS_PER_ANSWER {
            return Err(expired());
        }
        Ok(Since {
            events,
            new_token: self.current_token(),
        })
    }
}

fn token(epoch: &str, seq: i64) -> String {
    format!("{epoch}:{seq}")
}
