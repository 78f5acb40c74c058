//! Live Slack as the planner sees it: one snapshot, read in full or not at all.

use serde::{Deserialize, Serialize};

/// Everything the planner needs from Slack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub users: Vec<LiveUser>,
    pub usergroups: Vec<LiveUsergroup>,
    pub channels: Vec<LiveChannel>,
    /// IdP groups (Enterprise Grid), empty on Business+.
    pub idp_groups: Vec<LiveIdpGroup>,
    /// The apps the plan's leavers installed, read before planning (only theirs: the
    /// integration logs are asked about no one else). Not part of a snapshot.
    #[serde(skip)]
    pub apps: InstalledApps,
}

/// What Slack said of the apps leavers installed.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum InstalledApps {
    /// Not known: not asked (no leaver, or a path that does not read them) or the read
    /// failed. A leaver's impact then says "installed apps unknown".
    #[default]
    Unknown,
    /// Every app still installed by one of the leavers.
    Known(Vec<LiveApp>),
}

/// How a person is a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    Multi,
    Single,
}

/// A Slack account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveUser {
    pub id: String,
    pub email: String,
    pub user_name: String,
    pub given_name: String,
    pub family_name: String,
    pub title: String,
    pub department: String,
    /// The manager as SCIM's enterprise extension gives it: a Slack user id (Slack also
    /// accepts an email or username when it is set).
    #[serde(default)]
    pub manager: Option<String>,
    pub active: bool,
    pub admin: bool,
    pub owner: bool,
    pub primary_owner: bool,
    pub guest: Option<GuestKind>,
    pub bot: bool,
    /// Workspaces (team ids) the account belongs to.
    pub workspaces: Vec<String>,
}

/// A usergroup in one workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveUsergroup {
    pub id: String,
    pub workspace: String,
    pub handle: String,
    pub name: String,
    pub description: String,
    pub members: Vec<String>,
    /// Default channels (public and private).
    pub channels: Vec<String>,
    pub disabled: bool,
}

/// A channel. Members are read only for the channels the config manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveChannel {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub private: bool,
    pub archived: bool,
    pub members: Option<Vec<String>>,
    /// The member count `conversations.list` gives, for channels whose members are not
    /// read (the access review lists them as out of scope with it).
    #[serde(default)]
    pub num_members: Option<u64>,
}

/// An org-level IdP group (a SCIM Group on Grid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveIdpGroup {
    pub id: String,
    pub name: String,
    pub members: Vec<String>,
}

/// An app a person installed that is still installed, from `team.integrationLogs`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LiveApp {
    pub id: String,
    pub name: String,
    pub workspace: String,
    /// The Slack user id of the person who installed it.
    pub installed_by: String,
}
