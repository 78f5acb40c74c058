//! The config repository's file kinds as Rust types: the single source of the JSON
//! schemas in `schema/` and of what the loader deserialises.
//!
//! These types mirror the YAML one to one. Unknown keys are errors everywhere
//! (`deny_unknown_fields` here, `additionalProperties: false` in the schema). Optional
//! values are `Option` or defaulted, never nullable in the schema: an empty `key:` in
//! YAML is a mistake worth reporting.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{ChannelName, Email, Handle, PlanHash, TeamId};

/// The only `apiVersion` this version of the tool reads.
pub const API_VERSION: &str = "slack-gitops/v1";

/// `apiVersion: slack-gitops/v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "slack-gitops/v1")]
    V1,
}

/// `slack-gitops.yaml`: the Slack org, the identity source and the account scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "slack-gitops Config")]
pub struct ConfigFile {
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    /// Always `Config`.
    #[schemars(schema_with = "kind_schema::<ConfigKind>")]
    pub kind: String,
    pub slack: SlackSettings,
    pub identity: IdentitySettings,
    pub users: UserSettings,
    /// Where merged commits come from.
    #[serde(default)]
    pub gitops: Option<GitopsSettings>,
    /// Where the controller posts a digest of each apply, new drift, halt or refusal.
    #[serde(default)]
    pub notify: Option<NotifySettings>,
}

/// The controller's notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// A channel name (`#it-ops`) or id; the bot token must be in it.
    #[schemars(length(min = 1))]
    pub channel: String,
    /// The workspace key of the channel (default: the first in `slack.workspaces`).
    #[serde(default)]
    pub workspace: Option<String>,
}

/// The protected branch `apply` and the controller take commits from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitopsSettings {
    /// A branch or remote-tracking branch (`origin/main`, the default, or `main`). Only
    /// commits reachable from it are applied.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub branch: Option<String>,
}

/// The protected branch when the config names none.
pub const DEFAULT_BRANCH: &str = "origin/main";

impl ConfigFile {
    /// The Slack team id of a workspace key.
    pub fn team_id(&self, workspace: &str) -> Option<String> {
        self.slack
            .workspaces
            .get(workspace)
            .map(|t| t.as_str().to_string())
    }
}

/// `mappings/*.yaml`: usergroups and channels, split by team as owners like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "slack-gitops Mappings")]
pub struct MappingsFile {
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    /// Always `Mappings`.
    #[schemars(schema_with = "kind_schema::<MappingsKind>")]
    pub kind: String,
    /// Usergroups this file manages.
    #[serde(default)]
    pub usergroups: Vec<UsergroupSpec>,
    /// Channels this file manages.
    #[serde(default)]
    pub channels: Vec<ChannelSpec>,
}

/// `policies/*.yaml`: guardrails. Several files merge; two files may not set the same limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "slack-gitops Policy")]
pub struct PolicyFile {
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    /// Always `Policy`.
    #[schemars(schema_with = "kind_schema::<PolicyKind>")]
    pub kind: String,
    /// Per-sync limits on destructive actions; exceeding any one halts the whole sync.
    #[serde(default)]
    pub limits: Limits,
    /// Identities that are never deactivated or removed, whatever the mappings say.
    #[serde(default)]
    pub protected: Protected,
    /// How far the identity snapshot may shrink against the last good one.
    #[serde(default)]
    pub identity: Option<IdentityGuard>,
    /// Scheduled drift reconciliation.
    #[serde(default)]
    pub drift: Option<DriftPolicy>,
    /// Who may approve a plan over a limit, by email; anyone when empty.
    #[serde(default)]
    pub approvers: Vec<Email>,
    /// When an apply stops on failing writes.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// How leavers are handled.
    #[serde(default)]
    pub leavers: Option<LeaverPolicy>,
}

/// An apply halts after this many failed writes in a row, or when more than
/// `max_error_percent` of its writes failed once it made at least `min_writes`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    #[serde(default = "default_consecutive_failures")]
    #[schemars(range(min = 1))]
    pub consecutive_failures: u32,
    #[serde(default = "default_max_error_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub max_error_percent: f64,
    #[serde(default = "default_min_writes")]
    #[schemars(range(min = 1))]
    pub min_writes: u32,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            consecutive_failures: default_consecutive_failures(),
            max_error_percent: default_max_error_percent(),
            min_writes: default_min_writes(),
        }
    }
}

fn default_consecutive_failures() -> u32 {
    5
}
fn default_max_error_percent() -> f64 {
    20.0
}
fn default_min_writes() -> u32 {
    20
}

/// Leaver handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaverPolicy {
    /// The deactivation SLA: from first seen as a leaver to signed out, such as `4h`.
    pub sla: String,
}

/// `approvals/*.yaml`: a recorded approval of one plan's destructive action set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "slack-gitops Approval")]
pub struct ApprovalFile {
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    /// Always `Approval`.
    #[schemars(schema_with = "kind_schema::<ApprovalKind>")]
    pub kind: String,
    /// The plan hash printed by `slack-gitops plan`, `sha256:` and 64 hex digits; for an
    /// approval with `overrides`, the plan's override hash (`policy.override_hash`).
    pub hash: PlanHash,
    /// Why these destructive changes are intended.
    #[schemars(length(min = 1))]
    pub reason: String,
    /// Who approved, by email.
    #[schemars(length(min = 1))]
    pub approved_by: Vec<Email>,
    /// A ticket or change-request reference.
    #[serde(default)]
    pub ticket: Option<String>,
    /// The approval lapses at the end of this day (UTC), `YYYY-MM-DD`.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub expires: Option<String>,
    /// Ids of Rego policy denials this approval overrides for the plan whose override hash
    /// it carries: only those whose policy allows it (`overridable_by`), approved by enough
    /// of the people it names.
    #[serde(default)]
    pub overrides: Vec<String>,
}

/// Where and how to reach Slack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The Slack plan: Enterprise Grid has org-level admin APIs; Business+ has one workspace.
    pub plan: SlackPlan,
    /// Workspace keys used in mappings, each to its Slack team id.
    #[schemars(length(min = 1))]
    pub workspaces: BTreeMap<String, TeamId>,
    /// The environment variable holding the admin user token (`xoxp-`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// The environment variable holding an optional bot token (`xoxb-`) for channel work.
    #[serde(default)]
    pub bot_token_env: Option<String>,
    /// One base URL serving `BASE/api/` and `BASE/scim/v2/` (the emulator); real Slack when absent.
    #[serde(default)]
    pub url: Option<String>,
}

/// The Slack plan of the org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SlackPlan {
    EnterpriseGrid,
    BusinessPlus,
}

/// The identity provider to read people and groups from (read only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    /// Which adapter reads the directory.
    pub source: IdentitySource,
    /// `file`: the export's path, relative to the repository root.
    #[serde(default)]
    pub path: Option<String>,
    /// `scim`, `okta`: the server's base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// `scim`, `okta`: the environment variable holding the API token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// `entra`: the Microsoft Entra tenant id.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// `entra`: the application (client) id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `entra`: the environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// `okta`: where a person's manager is found. Without it, `managerId` holds the
    /// manager's Okta user id.
    #[serde(default)]
    pub manager: Option<ManagerSettings>,
    /// `okta`, `entra`: with a state store, the directory is kept there and later reads
    /// follow the provider's change feed (Okta's System Log, Graph's delta queries); a
    /// full read, the verified resync, runs at least this often (hours; 24 when absent).
    #[serde(default)]
    #[schemars(range(min = 1, max = 720))]
    pub full_read_every_hours: Option<u32>,
}

/// Where the identity provider keeps a person's manager: a profile attribute, and which
/// attribute of the manager's own profile its value matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagerSettings {
    /// The profile attribute that names the manager (`managerId` when absent).
    #[serde(default = "manager_attribute")]
    #[schemars(length(min = 1))]
    pub attribute: String,
    /// What the value is: the manager's user `id`, `login`, `email` or `employee-number`
    /// (`employeeNumber` in their profile).
    #[serde(default)]
    pub matches: ManagerMatch,
}

fn manager_attribute() -> String {
    "managerId".to_string()
}

impl Default for ManagerSettings {
    fn default() -> Self {
        ManagerSettings {
            attribute: manager_attribute(),
            matches: ManagerMatch::Id,
        }
    }
}

/// What a manager attribute's value identifies the manager by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ManagerMatch {
    /// The manager's user id in the identity provider.
    #[default]
    Id,
    Login,
    Email,
    EmployeeNumber,
}

/// The identity adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IdentitySource {
    File,
    Scim,
    Okta,
    Entra,
}

impl IdentitySource {
    /// The settings this source requires, and those it accepts but does not require.
    pub fn settings(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            IdentitySource::File => (&["path"], &[]),
            IdentitySource::Scim => (&["url", "token_env"], &[]),
            IdentitySource::Okta => (&["url", "token_env"], &["manager"]),
            IdentitySource::Entra => (&["tenant_id", "client_id", "client_secret_env"], &["url"]),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IdentitySource::File => "file",
            IdentitySource::Scim => "scim",
            IdentitySource::Okta => "okta",
            IdentitySource::Entra => "entra",
        }
    }
}

/// Who gets a Slack account, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    /// `eager` creates accounts ahead of first login; `just-in-time` leaves that to SSO.
    pub provisioning: Provisioning,
    /// IdP groups whose members should have a Slack account.
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub scope: Vec<String>,
}

/// How accounts come into being.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provisioning {
    Eager,
    JustInTime,
}

/// A Slack usergroup whose membership comes from IdP groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsergroupSpec {
    /// The mention handle, without `@`.
    pub handle: Handle,
    /// The display name.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// What the group is for.
    #[serde(default)]
    #[schemars(length(max = 140))]
    pub description: Option<String>,
    /// Workspace keys (from `slack.workspaces`) the usergroup is in.
    #[schemars(length(min = 1))]
    pub workspaces: Vec<String>,
    /// Who is in the usergroup.
    pub members: MemberSpec,
    /// Default channels: the usergroup's members are invited to them.
    #[serde(default)]
    pub channels: Vec<ChannelName>,
}

/// A set of people: members of some IdP groups (nested groups resolved transitively) and
/// listed people, less excluded groups and people.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    /// IdP groups whose members (transitively) are selected.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub groups: Vec<String>,
    /// People selected by email, whatever their groups.
    #[serde(default)]
    pub users: Vec<Email>,
    /// IdP groups whose members are never selected.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub exclude: Vec<String>,
    /// People never selected, by email.
    #[serde(default)]
    pub exclude_users: Vec<Email>,
}

/// A channel managed by this repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// The channel name, without `#`.
    pub name: ChannelName,
    /// The workspace key (from `slack.workspaces`) the channel lives in.
    pub workspace: String,
    /// Whether the channel is private.
    #[serde(default)]
    pub private: bool,
    /// The channel's topic.
    #[serde(default)]
    #[schemars(length(max = 250))]
    pub topic: Option<String>,
    /// Who should be in the channel, besides members of usergroups that list it.
    #[serde(default)]
    pub members: Option<MemberSpec>,
    /// Whether people the config does not select are removed. Kicking is opt-in.
    #[serde(default)]
    pub remove_unlisted: bool,
}

/// Limits per kind of destructive action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Deactivated accounts.
    #[serde(default)]
    pub deactivate: Option<Limit>,
    /// People removed from usergroups.
    #[serde(default)]
    pub remove_from_usergroup: Option<Limit>,
    /// People removed from channels.
    #[serde(default)]
    pub remove_from_channel: Option<Limit>,
}

/// An absolute and/or relative ceiling; the sync halts when either is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// At most this many actions per sync.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub max: Option<u64>,
    /// At most this percentage of the population the action applies to.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub max_percent: Option<f64>,
}

/// Identities no sync may deactivate or remove.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Protected {
    /// People, by email.
    #[serde(default)]
    pub users: Vec<Email>,
    /// IdP groups whose members are protected.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub groups: Vec<String>,
}

/// How much the identity snapshot may shrink against the last good one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityGuard {
    /// The largest tolerated loss of people.
    pub max_shrink: Limit,
}

/// Scheduled reconciliation between merges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftPolicy {
    /// How often to reconcile, such as `15m`, `1h` or `30s`.
    pub every: String,
    /// `report` drift only, or `correct` it.
    pub action: DriftAction,
    /// Under `report`, the kinds of drift that are corrected all the same (such as
    /// `[missed_deprovision]`); the others are only reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub correct: Vec<DriftKind>,
}

/// A kind of drift, as the controller reports it (metrics, `/status`, notifications) and
/// as `drift.correct` names it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// An active Slack account unknown to the identity provider.
    GhostAccount,
    /// Suspended or deprovisioned in the identity provider, still active in Slack.
    MissedDeprovision,
    /// Known to the identity provider but outside `users.scope`.
    OutOfScope,
    /// In a managed usergroup or channel the commit in force does not put them in: added
    /// by hand in Slack (or taken out of the IdP group since).
    ManualAdd,
    /// In a managed usergroup the identity provider no longer puts them in, while it puts
    /// them in another: a mover whose old access remains.
    Moved,
    /// Not in a managed usergroup or channel the commit in force puts them in: removed by
    /// hand in Slack, or new in the IdP group.
    MissingMember,
}

impl DriftKind {
    /// The name used in config, metrics and `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::GhostAccount => "ghost_account",
            DriftKind::MissedDeprovision => "missed_deprovision",
            DriftKind::OutOfScope => "out_of_scope",
            DriftKind::ManualAdd => "manual_add",
            DriftKind::Moved => "moved",
            DriftKind::MissingMember => "missing_member",
        }
    }
}

/// What the controller does about drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriftAction {
    Report,
    Correct,
}

struct ConfigKind;
struct MappingsKind;
struct PolicyKind;
struct ApprovalKind;

/// The name a file kind has in `kind:`.
trait KindName {
    const NAME: &'static str;
}
impl KindName for ConfigKind {
    const NAME: &'static str = "Config";
}
impl KindName for MappingsKind {
    const NAME: &'static str = "Mappings";
}
impl KindName for PolicyKind {
    const NAME: &'static str = "Policy";
}
impl KindName for ApprovalKind {
    const NAME: &'static str = "Approval";
}

fn kind_schema<K: KindName>(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "const": K::NAME })
}
