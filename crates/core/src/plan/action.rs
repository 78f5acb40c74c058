//! The actions a plan is made of: data that the executor runs with one `match`.
//!
//! A person, usergroup or channel an action targets is either live in Slack, named by its
//! id, or created earlier in the same run ([`SlackId::New`]), named by email, handle or
//! channel name; the executor resolves the id when the creation has run.

use serde::{Deserialize, Serialize};

use super::desired::RuleRef;
use crate::config::types::SlackPlan;

/// The Slack id of something an action targets: live now, or created earlier in the same
/// run. On the wire (the JSON plan) it is the id or `null`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlackId {
    /// Exists in Slack with this id.
    Live(String),
    /// Created by an earlier action of the same plan; its id is known once that ran.
    New,
}

impl SlackId {
    /// The id, when the object is live.
    pub fn live(&self) -> Option<&str> {
        match self {
            SlackId::Live(id) => Some(id),
            SlackId::New => None,
        }
    }
}

impl From<Option<String>> for SlackId {
    fn from(id: Option<String>) -> SlackId {
        id.map_or(SlackId::New, SlackId::Live)
    }
}

impl Serialize for SlackId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.live().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SlackId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SlackId, D::Error> {
        Option::<String>::deserialize(deserializer).map(SlackId::from)
    }
}

/// The profile a new account is created with (SCIM `POST /Users`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NewProfile {
    pub given_name: String,
    pub family_name: String,
    pub title: String,
    pub department: String,
}

/// Why a person's account should go, or why a membership differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// Active in Slack, unknown to the identity provider.
    GhostAccount,
    /// Suspended or deprovisioned in the identity provider, still active in Slack.
    MissedDeprovision,
    /// Known to the identity provider but outside `users.scope`.
    OutOfScope,
    /// In a managed usergroup or channel that the rules do not select, for a reason the
    /// inputs cannot tell: added by hand in Slack, left the IdP group, or the mapping
    /// changed (there is no baseline to compare the mapping with).
    NotSelected,
    /// Not selected here, while the same plan adds them to another managed usergroup:
    /// the identity provider moved them.
    Moved,
    /// Not selected because the mapping changed since the last good plan.
    MappingChanged,
    /// Not selected by a mapping that is as it was at the last good plan: added by hand
    /// in Slack (or taken out of the IdP group since).
    ManualAdd,
}

/// One person affected by an action.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Person {
    pub email: String,
    /// The Slack user id; [`SlackId::New`] for an account this run creates.
    pub user_id: SlackId,
}

/// Why a person is wanted somewhere: the rule, and the IdP groups that lead from the
/// rule's group down to the one that lists the person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Grant {
    /// The mapping rule, or `users.scope` in the config file.
    pub rule: RuleRef,
    /// `["engineering", "platform", "sre"]`; empty when the rule lists the person by email.
    pub via: Vec<String>,
}

/// A person added somewhere, with why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Addition {
    pub person: Person,
    pub grants: Vec<Grant>,
}

/// A person removed from somewhere (or deactivated), with why they no longer qualify.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Removal {
    pub person: Person,
    pub drift: Drift,
    /// In words: "suspended in the identity provider", "excluded by `contractors`
    /// (contractors > vendors)", "in none of `engineering`".
    pub why: String,
}

/// What a leaver loses when deactivated, as live Slack shows it today.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Impact {
    /// `T0000MAIN/@eng`, sorted.
    pub usergroups: Vec<String>,
    /// `T0000MAIN/#eng`, sorted; only channels whose members were read (managed ones).
    pub channels: Vec<String>,
    /// Apps they installed (`Deploy notifier (A0000DEPLOY) in T0000MAIN`), which Slack may
    /// disable when they are deactivated; `None` when Slack could not say
    /// ([`InstalledApps::Unknown`](crate::model::live::InstalledApps::Unknown)).
    pub apps: Option<Vec<String>>,
}

/// A joiner whose account SSO creates at first login (`just-in-time` provisioning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Awaiting {
    pub email: String,
    pub grant: Grant,
    /// `T0000MAIN/@eng`: usergroups they join once the account exists.
    pub usergroups: Vec<String>,
    /// `T0000MAIN/#eng`: channels they are invited to then.
    pub channels: Vec<String>,
}

/// One change to Slack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateUser {
        person: Person,
        grant: Grant,
        profile: NewProfile,
    },
    ReactivateUser {
        person: Person,
    },
    AssignWorkspace {
        person: Person,
        workspace: String,
    },
    /// Profile fields the identity provider says differ (names, title, department, manager).
    UpdateProfile {
        person: Person,
        fields: Vec<FieldChange<ProfileField>>,
    },
    CreateUsergroup {
        workspace: String,
        handle: String,
        name: String,
        description: String,
        /// Default channel names, resolved to ids when the usergroup is created.
        channels: Vec<String>,
        rule: RuleRef,
    },
    UpdateUsergroup {
        workspace: String,
        usergroup_id: String,
        handle: String,
        fields: Vec<FieldChange<UsergroupField>>,
        rule: RuleRef,
    },
    EnableUsergroup {
        workspace: String,
        usergroup_id: String,
        handle: String,
    },
    SetUsergroupMembers {
        workspace: String,
        usergroup_id: SlackId,
        handle: String,
        /// The full list sent to Slack (`usergroups.users.update` replaces it whole).
        members: Vec<Person>,
        adds: Vec<Addition>,
        removes: Vec<Removal>,
        rule: RuleRef,
    },
    CreateChannel {
        workspace: String,
        name: String,
        private: bool,
        rule: Option<RuleRef>,
    },
    InviteToChannel {
        workspace: String,
        channel: String,
        channel_id: SlackId,
        people: Vec<Addition>,
    },
    KickFromChannel {
        workspace: String,
        channel: String,
        channel_id: String,
        removal: Removal,
    },
    DisableUsergroup {
        workspace: String,
        usergroup_id: String,
        handle: String,
    },
    DeactivateUser {
        removal: Removal,
        impact: Impact,
    },
    /// Signs a leaver out everywhere: by `admin.users.session.reset` on Enterprise
    /// Grid, by the deactivation itself on Business+ (verified by reading it back).
    ResetSessions {
        person: Person,
        #[serde(skip_serializing_if = "SignOut::is_session_reset")]
        by: SignOut,
    },
    /// Gives back a workspace role (`restore` after a reactivation dropped it).
    SetRole {
        person: Person,
        workspace: String,
        role: Role,
    },
}

/// How a leaver is signed out of every session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignOut {
    /// `admin.users.session.reset` (Enterprise Grid's admin API).
    #[default]
    SessionReset,
    /// By the deactivation: Slack signs a deactivated account out of every device
    /// (Slack help, "Deactivate a member's account"). Business+ has no session API, so
    /// this is how it is done there, verified by reading the account back.
    Deactivation,
}

impl SignOut {
    /// How a leaver is signed out on `plan`.
    pub fn on(plan: SlackPlan) -> SignOut {
        match plan {
            SlackPlan::EnterpriseGrid => SignOut::SessionReset,
            SlackPlan::BusinessPlus => SignOut::Deactivation,
        }
    }

    pub fn is_session_reset(&self) -> bool {
        *self == SignOut::SessionReset
    }
}

/// Something the plan needs that the Slack plan offers no API for: a person does it by
/// hand, following the instruction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ManualStep {
    pub email: String,
    /// What to do, in Slack's own words for the screens involved.
    pub instruction: String,
}

/// A workspace role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// A field that changes, from one value to another: a profile's (`ProfileField`) or a
/// usergroup's (`UsergroupField`). The writer matches the field exhaustively, so a field
/// it cannot write is a compile error, never a silently dropped change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange<F> {
    pub field: F,
    pub from: String,
    pub to: String,
}

/// A profile field the plan keeps as the identity provider has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileField {
    GivenName,
    FamilyName,
    Title,
    Department,
    /// Named by email in the plan, by Slack id on the wire.
    Manager,
}

impl ProfileField {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileField::GivenName => "given_name",
            ProfileField::FamilyName => "family_name",
            ProfileField::Title => "title",
            ProfileField::Department => "department",
            ProfileField::Manager => "manager",
        }
    }
}

/// A usergroup field the plan keeps as the config has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsergroupField {
    Name,
    Description,
}

impl UsergroupField {
    pub fn as_str(self) -> &'static str {
        match self {
            UsergroupField::Name => "name",
            UsergroupField::Description => "description",
        }
    }
}

impl std::fmt::Display for ProfileField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for UsergroupField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// People SSO will create at first login (`just-in-time`), with the memberships a
    /// later sync gives them once the account exists.
    pub awaiting_first_login: Vec<Awaiting>,
    /// Leavers that are protected: reported, never deactivated.
    pub blocked_by_protection: Vec<Removal>,
    /// Usergroups and channels in Slack that the config does not name (never changed).
    pub unmanaged_usergroups: Vec<(String, String)>,
    pub unmanaged_channels: Vec<(String, String)>,
    /// What the Slack plan has no API for (restoring a role on Business+): never
    /// attempted, listed for a person to do.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manual_steps: Vec<ManualStep>,
}

impl Plan {
    /// Every change, one canonical line each, sorted: what two plans of the same pull
    /// request are compared by ("since the last push"). A usergroup's member list is
    /// its additions and removals, a profile update its fields and their new values.
    pub fn change_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for action in &self.actions {
            action.change_lines(&mut lines);
        }
        lines.sort();
        lines.dedup();
        lines
    }
}
