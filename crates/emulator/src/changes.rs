//! What changed in the world, as Slack's Events API would tell it.
//!
//! Every write that Slack reports as an event goes through a method here, which makes the
//! change and notes it. The emulator drains the notes after each call and turns them into
//! events ([`crate::events`]), so an event is emitted whoever made the change: the Web
//! API, an admin method, SCIM, or a deactivation job. A handler that changed membership
//! or a usergroup by hand, without these methods, would be a change no event reports.

use crate::world::World;

/// One change, by ids. Rendered into an event against the world after the call, so the
/// event carries the objects as they are once the call is done (as on Slack).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `member_joined_channel`.
    Joined {
        channel: String,
        user: String,
        inviter: Option<String>,
    },
    /// `member_left_channel`.
    Left { channel: String, user: String },
    /// A channel was created: `channel_created` for a public one (a private one shows
    /// only as its creator joining); an audit entry either way.
    ChannelCreated { channel: String },
    /// `channel_archive`/`channel_unarchive`, or `group_*` for a private channel.
    Archived {
        channel: String,
        by: String,
        archived: bool,
    },
    /// `channel_rename`, or `group_rename` for a private channel.
    Renamed { channel: String },
    /// `subteam_created`.
    SubteamCreated { id: String },
    /// `subteam_updated` (name, handle, description, channels, enabled, members).
    SubteamUpdated { id: String },
    /// `subteam_members_changed`: the delta and the two `date_update`s it links.
    SubteamMembers {
        id: String,
        added: Vec<String>,
        removed: Vec<String>,
        previous: u64,
        update: u64,
    },
    /// `user_change`: profile, role, or active flag.
    UserChanged { id: String },
    /// `team_join`: a person joined a workspace.
    TeamJoin { user: String, team: String },
}

/// The changes noted since the last drain. Not part of the world's state: it is never
/// saved, and two worlds are equal whatever notes they hold.
#[derive(Debug, Clone, Default)]
pub struct Changes(pub(crate) Vec<Change>);

impl PartialEq for Changes {
    fn eq(&self, _: &Changes) -> bool {
        true
    }
}

impl World {
    /// Notes a change made in place (a usergroup's name, a user's profile).
    pub fn note(&mut self, change: Change) {
        self.changes.0.push(change);
    }

    /// The changes noted since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes.0)
    }

    /// Adds a person to a channel; false if they were already in it or it is unknown.
    pub fn join_channel(&mut self, channel: &str, user: &str, inviter: Option<&str>) -> bool {
        let Some(target) = self.channel_mut(channel) else {
            return false;
        };
        if target.members.iter().any(|m| m == user) {
            return false;
        }
        target.members.push(user.to_string());
        self.note(Change::Joined {
            channel: channel.to_string(),
            user: user.to_string(),
            inviter: inviter.map(str::to_string),
        });
        true
    }

    /// Removes a person from a channel; false if they were not in it.
    pub fn leave_channel(&mut self, channel: &str, user: &str) -> bool {
        let Some(target) = self.channel_mut(channel) else {
            return false;
        };
        let before = target.members.len();
        target.members.retain(|m| m != user);
        if target.members.len() == before {
            return false;
        }
        self.note(Change::Left {
            channel: channel.to_string(),
            user: user.to_string(),
        });
        true
    }

    /// Removes a person from every channel `keep` selects (by workspace) that has them.
    pub fn leave_channels_where(&mut self, user: &str, keep: impl Fn(&str) -> bool) {
        let channels: Vec<String> = self
            .channels
            .iter()
            .filter(|c| keep(&c.workspace) && c.members.iter().any(|m| m == user))
            .map(|c| c.id.clone())
            .collect();
        for channel in channels {
            self.leave_channel(&channel, user);
        }
    }

    /// Replaces a usergroup's members at `now` by `by`, noting the delta and the update.
    /// Nothing is noted when the members are the same.
    pub fn set_usergroup_users(&mut self, id: &str, users: Vec<String>, now: u64, by: &str) {
        let Some(group) = self.usergroup_mut(id) else {
            return;
        };
        let added: Vec<String> = users
            .iter()
            .filter(|u| !group.users.contains(u))
            .cloned()
            .collect();
        let removed: Vec<String> = group
            .users
            .iter()
            .filter(|u| !users.contains(u))
            .cloned()
            .collect();
        group.users = users;
        if added.is_empty() && removed.is_empty() {
            return;
        }
        let previous = group.updated;
        group.updated = now;
        if !by.is_empty() {
            group.updated_by = by.to_string();
        }
        self.note(Change::SubteamMembers {
            id: id.to_string(),
            added,
            removed,
            previous,
            update: now,
        });
        self.note(Change::SubteamUpdated { id: id.to_string() });
    }

    /// Removes a person from every usergroup `keep` selects (by workspace) that has them.
    pub fn leave_usergroups_where(&mut self, user: &str, now: u64, keep: impl Fn(&str) -> bool) {
        let groups: Vec<(String, Vec<String>)> = self
            .usergroups
            .iter()
            .filter(|g| keep(&g.workspace) && g.users.iter().any(|u| u == user))
            .map(|g| {
                let rest = g.users.iter().filter(|u| *u != user).cloned().collect();
                (g.id.clone(), rest)
            })
            .collect();
        for (id, rest) in groups {
            self.set_usergroup_users(&id, rest, now, "");
        }
    }

    /// Adds a person to a workspace, noting `team_join`; false if already a member.
    pub fn join_workspace(&mut self, user: &str, team: &str, now: u64) -> bool {
        let Some(person) = self.user_mut(user) else {
            return false;
        };
        if person.workspaces.iter().any(|w| w == team) {
            return false;
        }
        person.workspaces.push(team.to_string());
        person.updated = now;
        self.note(Change::TeamJoin {
            user: user.to_string(),
            team: team.to_string(),
        });
        true
    }
}
