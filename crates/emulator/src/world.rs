//! The emulated Slack org: its data, the seed/state file format, and the rules that
//! change it. Handlers in `web` and `scim` translate requests into calls here; nothing in
//! this file knows about HTTP.
//!
//! The seed format and the `--state` file are the same JSON document, so a saved state
//! can seed a later run. Ids are kept in `BTreeMap`s, so listings (and so pagination) are
//! in a stable order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::changes::Change;

/// The whole emulated org. Serialised as the seed / state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// Present on Enterprise Grid; absent on Business+.
    #[serde(default)]
    pub enterprise: Option<Enterprise>,
    pub workspaces: Vec<Workspace>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub usergroups: Vec<Usergroup>,
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// SCIM Groups on Grid: IdP groups. On Business+ Slack's SCIM groups are the
    /// workspace's usergroups, and the SCIM layer serves `usergroups` as groups instead
    /// (`scim::handle`); a Business+ seed has none here.
    #[serde(default)]
    pub idp_groups: Vec<IdpGroup>,
    #[serde(default)]
    pub apps: Vec<App>,
    pub tokens: Vec<Token>,
    #[serde(default)]
    pub settings: Settings,
    /// What the Audit Logs API serves (Enterprise Grid), oldest first.
    #[serde(default)]
    pub audit_log: std::collections::VecDeque<crate::audit::AuditEntry>,
    /// The app's Events API subscription, if it has one.
    #[serde(default)]
    pub events: Option<crate::events::Subscription>,
    /// Events the emulator produced that tests may inspect: session resets, app logs.
    #[serde(default)]
    pub integration_logs: Vec<IntegrationLog>,
    #[serde(default)]
    pub session_resets: Vec<SessionReset>,
    /// Messages posted with `chat.postMessage`.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Deactivations requested through SCIM DELETE that have not taken effect yet.
    #[serde(default)]
    pub pending_deactivations: Vec<PendingDeactivation>,
    /// The next number used to mint ids.
    #[serde(default = "first_id")]
    pub next_id: u64,
    /// Positions of users and channels by id, so lookups stay cheap in 50,000-person
    /// orgs. Rebuilt by [`World::reindex`]; people and channels are only ever appended.
    #[serde(skip)]
    index: Index,
    /// Changes noted since the emulator last turned them into events.
    #[serde(skip)]
    pub changes: crate::changes::Changes,
    /// Socket Mode tickets `apps.connections.open` handed out and no WebSocket has used
    /// yet: the ticket, and the app it is for.
    #[serde(skip)]
    pub socket_tickets: std::collections::BTreeMap<String, SocketTicket>,
    /// Socket Mode tickets handed out so far (each ticket's number).
    #[serde(skip)]
    pub socket_tickets_issued: u64,
}

/// A Socket Mode ticket: single use, valid for [`SocketTicket::LIFETIME`] emulated
/// seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketTicket {
    pub app: String,
    pub expires: f64,
}

impl SocketTicket {
    pub const LIFETIME: f64 = 300.0;
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Index {
    users: std::collections::HashMap<String, usize>,
    channels: std::collections::HashMap<String, usize>,
}

fn first_id() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enterprise {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub domain: String,
}

/// How a person is a guest, if they are one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Guest {
    /// Multi-channel guest (`is_restricted`).
    Multi,
    /// Single-channel guest (`is_ultra_restricted`).
    Single,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: String,
    pub user_name: String,
    pub email: String,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub department: String,
    /// The manager's user id, when set through SCIM's enterprise extension.
    #[serde(default)]
    pub manager: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub owner: bool,
    #[serde(default)]
    pub primary_owner: bool,
    #[serde(default)]
    pub guest: Option<Guest>,
    #[serde(default)]
    pub bot: bool,
    /// Workspaces the person is a member of.
    #[serde(default)]
    pub workspaces: Vec<String>,
    #[serde(default)]
    pub external_id: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub updated: u64,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usergroup {
    pub id: String,
    pub workspace: String,
    pub handle: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub users: Vec<String>,
    /// Default channels (`prefs.channels`).
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub updated: u64,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub id: String,
    pub workspace: String,
    pub name: String,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub general: bool,
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub creator: String,
    #[serde(default)]
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpGroup {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub members: Vec<String>,
    /// Workspaces the group is connected to.
    #[serde(default)]
    pub workspaces: Vec<String>,
    /// Default channels linked with `admin.usergroups.addChannels`.
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub external_id: String,
    #[serde(default)]
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub id: String,
    pub name: String,
    pub workspace: String,
    /// Who installed it.
    pub installed_by: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub date: u64,
}

/// Whose token it is and what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// `xoxp-`: acts as a person; needed for SCIM and `admin.*`.
    User,
    /// `xoxb-`: acts as an app's bot user.
    Bot,
    /// `xapp-`: an app-level token; it only opens Socket Mode connections
    /// (`apps.connections.open`, scope `connections:write`).
    App,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub token: String,
    pub kind: TokenKind,
    /// The user (person or bot user) the token acts as.
    pub user: String,
    /// The app that owns the token; rate limits are per app.
    #[serde(default = "default_app")]
    pub app: String,
    /// An org-level (Grid) token: workspace-scoped methods need `team_id`.
    #[serde(default)]
    pub org_level: bool,
    /// The workspace of a workspace-level token.
    #[serde(default)]
    pub workspace: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub revoked: bool,
}

fn default_app() -> String {
    "A0000GITOPS".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationLog {
    pub app_id: String,
    pub app_type: String,
    pub user_id: String,
    pub user_name: String,
    pub date: u64,
    pub change_type: String,
    pub scope: String,
    pub workspace: String,
}

/// A posted message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub channel: String,
    pub user: String,
    pub text: String,
    #[serde(default)]
    pub blocks: serde_json::Value,
    pub ts: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionReset {
    pub user: String,
    pub at: u64,
    pub mobile_only: bool,
    pub web_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDeactivation {
    pub user: String,
    /// Emulated unix time at which it takes effect.
    pub due: f64,
}

/// Behaviour switches. Where Slack's behaviour is unconfirmed, the default is the stricter
/// choice (the one a client must handle anyway), and the switch allows the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Paginated Web API readers cut a virtual page and then filter it, and every third
    /// page comes back empty with a cursor, so clients must never stop on a short page.
    pub short_pages: bool,
    /// Emulated seconds between a SCIM DELETE and the user reading back `active: false`.
    pub scim_delete_delay_secs: f64,
    /// Emulated seconds a SCIM write holds its resource's lock; a second write to the
    /// same user or group within it gets 429.
    pub scim_write_secs: f64,
    /// A SCIM PUT that omits `active` deactivates the user (unconfirmed on Slack).
    pub put_without_active_deactivates: bool,
    /// Deactivation removes the person from every usergroup.
    pub deactivation_removes_from_usergroups: bool,
    /// Deactivation removes the person from every channel (reactivation does not put
    /// them back).
    pub deactivation_removes_from_channels: bool,
    /// Reactivation does not restore admin or owner roles (as after the 2024 incident).
    pub reactivation_drops_roles: bool,
    /// Bot tokens may edit usergroups (the workspace setting "who can modify user groups"
    /// is "everyone"); when false only admins' user tokens may.
    pub bots_may_edit_usergroups: bool,
    /// Rate-limit tiers of the Web API: requests per minute and burst.
    pub tiers: BTreeMap<String, Bucket>,
    /// Whether rate limits apply at all (benchmarks measuring the floor keep them on).
    pub rate_limits: bool,
    /// `users.lookupByEmail` does not find deactivated people (unconfirmed on Slack; the
    /// stricter choice, so a client never relies on it to find ghost accounts).
    pub lookup_by_email_skips_deactivated: bool,
    /// SCIM v2 accepts the `email eq` filter (documented for v1 only); when false it is
    /// refused as an unknown filter, as a strict v2 server would.
    pub scim_email_filter: bool,
}

/// A token bucket's rate and size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub per_minute: f64,
    pub burst: f64,
}

impl Default for Settings {
    fn default() -> Self {
        let tier = |per_minute: f64| Bucket {
            per_minute,
            burst: per_minute,
        };
        Settings {
            short_pages: true,
            scim_delete_delay_secs: 2.0,
            scim_write_secs: 0.05,
            put_without_active_deactivates: true,
            deactivation_removes_from_usergroups: true,
            deactivation_removes_from_channels: true,
            reactivation_drops_roles: true,
            bots_may_edit_usergroups: true,
            tiers: BTreeMap::from([
                ("tier1".to_string(), tier(1.0)),
                ("tier2".to_string(), tier(20.0)),
                ("tier3".to_string(), tier(50.0)),
                ("tier4".to_string(), tier(100.0)),
                ("special".to_string(), tier(600.0)),
                // chat.postMessage: one a second per channel, short bursts allowed.
                (
                    "per-channel".to_string(),
                    Bucket {
                        per_minute: 60.0,
                        burst: 5.0,
                    },
                ),
            ]),
            rate_limits: true,
            lookup_by_email_skips_deactivated: true,
            scim_email_filter: true,
        }
    }
}

/// A seed or state file that does not hold together.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the seed is not valid JSON for the emulator: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("the seed is inconsistent: {0}")]
    Inconsistent(String),
}

impl World {
    /// The first seed token of `kind` that carries `scope`: how a demo or a test finds
    /// the admin token (`User`, `admin`) and the bot token (`Bot`, `channels:read`).
    pub fn token_with(&self, kind: TokenKind, scope: &str) -> Option<String> {
        self.tokens
            .iter()
            .find(|t| t.kind == kind && t.scopes.iter().any(|s| s == scope))
            .map(|t| t.token.clone())
    }

    /// Reads and checks a seed or state file's contents.
    pub fn from_json(text: &str) -> Result<World, SeedError> {
        let mut world: World = serde_json::from_str(text)?;
        world.check()?;
        world.reindex();
        Ok(world)
    }

    /// Every reference points at something that exists, and ids are unique.
    fn check(&self) -> Result<(), SeedError> {
        let fail = |message: String| Err(SeedError::Inconsistent(message));
        let workspaces: BTreeSet<&str> = self.workspaces.iter().map(|w| w.id.as_str()).collect();
        let users: BTreeSet<&str> = self.users.iter().map(|u| u.id.as_str()).collect();
        let channels: BTreeSet<&str> = self.channels.iter().map(|c| c.id.as_str()).collect();
        if workspaces.len() != self.workspaces.len() || users.len() != self.users.len() {
            return fail("workspace and user ids must be unique".into());
        }
        let mut emails = BTreeSet::new();
        for user in &self.users {
            if !emails.insert(user.email.to_lowercase()) {
                return fail(format!("email {} is used twice", user.email));
            }
            if let Some(w) = user
                .workspaces
                .iter()
                .find(|w| !workspaces.contains(w.as_str()))
            {
                return fail(format!("user {} is in unknown workspace {w}", user.id));
            }
        }
        for group in &self.usergroups {
            if !workspaces.contains(group.workspace.as_str()) {
                return fail(format!("usergroup {} is in unknown workspace", group.id));
            }
            if let Some(u) = group.users.iter().find(|u| !users.contains(u.as_str())) {
                return fail(format!("usergroup {} has unknown member {u}", group.id));
            }
            if let Some(c) = group
                .channels
                .iter()
                .find(|c| !channels.contains(c.as_str()))
            {
                return fail(format!("usergroup {} has unknown channel {c}", group.id));
            }
        }
        for channel in &self.channels {
            if !workspaces.contains(channel.workspace.as_str()) {
                return fail(format!("channel {} is in unknown workspace", channel.id));
            }
            if let Some(u) = channel.members.iter().find(|u| !users.contains(u.as_str())) {
                return fail(format!("channel {} has unknown member {u}", channel.id));
            }
        }
        for group in &self.idp_groups {
            if let Some(u) = group.members.iter().find(|u| !users.contains(u.as_str())) {
                return fail(format!("IdP group {} has unknown member {u}", group.id));
            }
        }
        for token in &self.tokens {
            if !users.contains(token.user.as_str()) {
                return fail(format!("a token acts as unknown user {}", token.user));
            }
        }
        // Without `enterprise` the seed is a Business+ workspace: one workspace, and no
        // org-level token (those are Enterprise Grid's).
        if self.enterprise.is_none() {
            if self.workspaces.len() != 1 {
                return fail(format!(
                    "a seed without `enterprise` is a Business+ workspace and has exactly one workspace, not {}",
                    self.workspaces.len()
                ));
            }
            if let Some(token) = self.tokens.iter().find(|t| t.org_level) {
                return fail(format!(
                    "token of user {} is org-level, which only an Enterprise Grid seed (with `enterprise`) has",
                    token.user
                ));
            }
        }
        Ok(())
    }

    /// A fresh id with Slack's prefix for the kind of object.
    pub fn mint_id(&mut self, prefix: char) -> String {
        let id = format!("{prefix}{:08X}", 0x0E00_0000 + self.next_id);
        self.next_id += 1;
        id
    }

    /// Rebuilds the id index after `users` or `channels` were changed directly.
    pub fn reindex(&mut self) {
        self.index.users = self
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect();
        self.index.channels = self
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
    }

    /// Adds a person (people are never removed: deactivation is a flag).
    pub fn add_user(&mut self, user: User) {
        self.index.users.insert(user.id.clone(), self.users.len());
        self.users.push(user);
    }

    /// Adds a channel (channels are archived, never removed).
    pub fn add_channel(&mut self, channel: Channel) {
        self.index
            .channels
            .insert(channel.id.clone(), self.channels.len());
        self.channels.push(channel);
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.index.users.get(id).map(|&i| &self.users[i])
    }

    pub fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.index.users.get(id).map(|&i| &mut self.users[i])
    }

    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    pub fn usergroup_mut(&mut self, id: &str) -> Option<&mut Usergroup> {
        self.usergroups.iter_mut().find(|g| g.id == id)
    }

    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.index.channels.get(id).map(|&i| &self.channels[i])
    }

    pub fn channel_mut(&mut self, id: &str) -> Option<&mut Channel> {
        self.index.channels.get(id).map(|&i| &mut self.channels[i])
    }

    pub fn idp_group_mut(&mut self, id: &str) -> Option<&mut IdpGroup> {
        self.idp_groups.iter_mut().find(|g| g.id == id)
    }

    /// Deactivates a person with Slack's side effects: their tokens stop working and, as
    /// configured, they leave every usergroup and channel; reactivation restores neither
    /// (as after the 2024 incident, where both were repaired by hand).
    pub fn deactivate(&mut self, id: &str, now: u64) {
        let removes = self.settings.deactivation_removes_from_usergroups;
        let leaves_channels = self.settings.deactivation_removes_from_channels;
        let Some(user) = self.user_mut(id) else {
            return;
        };
        if !user.active {
            return;
        }
        user.active = false;
        user.updated = now;
        for token in self.tokens.iter_mut().filter(|t| t.user == id) {
            token.revoked = true;
        }
        // Slack signs a deactivated account out of every device (Slack help, "Deactivate
        // a member's account"). On Enterprise Grid the emulator leaves the sessions open
        // (its documentation leaves it open, so the tool must reset them); on Business+,
        // which has no session API, the deactivation is the sign-out, recorded here.
        if self.enterprise.is_none() {
            self.session_resets.push(SessionReset {
                user: id.to_string(),
                at: now,
                mobile_only: false,
                web_only: false,
            });
        }
        self.note(Change::UserChanged { id: id.to_string() });
        if removes {
            self.leave_usergroups_where(id, now, |_| true);
        }
        if leaves_channels {
            self.leave_channels_where(id, |_| true);
        }
    }

    /// Reactivates a person. Their old tokens stay revoked; roles are dropped as
    /// configured; of their channels only each workspace's #general comes back.
    pub fn reactivate(&mut self, id: &str, now: u64) {
        let drops = self.settings.reactivation_drops_roles;
        if let Some(user) = self.user_mut(id)
            && !user.active
        {
            user.active = true;
            user.updated = now;
            if drops {
                user.admin = false;
                user.owner = false;
            }
            // Everyone in a workspace is in its #general, so that one comes back.
            let workspaces = user.workspaces.clone();
            let generals: Vec<String> = self
                .channels
                .iter()
                .filter(|c| c.general && workspaces.contains(&c.workspace))
                .map(|c| c.id.clone())
                .collect();
            self.note(Change::UserChanged { id: id.to_string() });
            for channel in generals {
                self.join_channel(&channel, id, None);
            }
        }
        self.pending_deactivations.retain(|p| p.user != id);
    }

    /// Applies SCIM deactivations whose delay has passed.
    pub fn run_due_jobs(&mut self, now: f64) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_deactivations)
            .into_iter()
            .partition(|p| p.due <= now);
        self.pending_deactivations = later;
        for job in due {
            self.deactivate(&job.user, now as u64);
        }
    }

    /// A SCIM `userName`: an email's local part, lowercase, characters other than letters,
    /// digits, `.`, `_` and `-` replaced by `_`, at most 21 characters.
    pub fn normalise_user_name(raw: &str) -> String {
        let local = raw.split('@').next().unwrap_or(raw);
        local
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(21)
            .collect()
    }

    /// Whether a `userName` collides with another user or a channel name (Slack shares
    /// one namespace between them).
    pub fn user_name_taken(&self, name: &str, except: Option<&str>) -> bool {
        self.users
            .iter()
            .any(|u| u.user_name == name && Some(u.id.as_str()) != except)
            || self.channels.iter().any(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_user_names_as_slack_does() {
        assert_eq!(
            World::normalise_user_name("Ada.Lovelace@acme.example"),
            "ada.lovelace"
        );
        assert_eq!(World::normalise_user_name("o'brien+x"), "o_brien_x");
        assert_eq!(
            World::normalise_user_name("a-very-long-user-name-indeed"),
            "a-very-long-user-name"
        );
    }
}
