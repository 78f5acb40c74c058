//! The access review: who holds which access in Slack, since when, granted by which rule
//! at which commit, under which approval, and what no rule grants; and the evidence that
//! leavers were removed in time. Pure: the desired state, the directory, live Slack and
//! the store's history in, rows out.
//!
//! Rows are produced one at a time through a callback, in a fixed order (accounts and
//! workspaces per person, then usergroups, channels, roles), so an export of 200,000
//! people streams to its file without holding every row; the digest and the summary are
//! accumulated as rows pass.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::model::directory::{Directory, PersonId, PersonStatus};
use crate::model::iso_time;
use crate::model::live::{Live, LiveUser};
use crate::plan::action::Grant;
use crate::plan::desired::Desired;

/// The version of the access-review document.
pub const REVIEW_VERSION: u32 = 1;

/// Statuses of an entitlement.
pub const GRANTED: &str = "granted by rule";
pub const EXCEPTION: &str = "exception";
pub const PENDING: &str = "pending";

/// One person's one entitlement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Entitlement {
    pub email: String,
    /// The Slack user id; absent for access granted by a rule but not applied yet.
    pub slack_id: Option<String>,
    pub display_name: String,
    /// `active`, `suspended`, or `unknown` (the identity provider does not list them).
    pub idp_status: String,
    /// `active`, `deactivated` or `no account`.
    pub slack_status: String,
    /// `member`, `guest` or `bot`.
    pub account_type: String,
    /// `org` (the Grid account), `workspace`, `usergroup`, `channel` or `role`.
    pub kind: String,
    /// The team id, for workspace-scoped entitlements.
    pub workspace: Option<String>,
    /// `@handle`, `#channel`, `admin`, `owner`, `primary owner`, the team id, or the org.
    pub name: String,
    /// The Slack id of the usergroup or channel.
    pub id: Option<String>,
    /// `granted by rule`, `exception` or `pending`.
    pub status: String,
    /// When it was granted: an ISO time from the store's audit events, or
    /// `before <first recorded run>`, or `not recorded`.
    pub granted_since: String,
    /// `file:line@commit` of the rule that grants it.
    pub rule: Option<String>,
    /// The IdP group chain from the rule's group down to the one that lists the person.
    pub via: Vec<String>,
    /// The last recorded change to it.
    pub last_change: Option<Change>,
    /// Why an exception is one, or what a pending entitlement waits for.
    pub note: String,
}

/// A recorded change, with the run, commit and approval behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    pub run: i64,
    pub at: String,
    /// `granted`, `removed`, `deactivated`, `reactivated`, `signed-out`.
    pub change: String,
    pub commit: Option<String>,
    pub approval: Option<ApprovalRef>,
}

/// An approval file, as the review names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRef {
    pub hash: String,
    pub approved_by: Vec<String>,
    pub ticket: Option<String>,
    pub reason: Option<String>,
}

/// A usergroup or channel the config does not manage: not reviewed, but counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutOfScope {
    /// `usergroup` or `channel`.
    pub kind: String,
    pub workspace: String,
    pub name: String,
    pub id: String,
    /// Its members, when Slack says.
    pub members: Option<u64>,
}

/// One leaver's offboarding evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaverRow {
    pub email: String,
    pub slack_id: Option<String>,
    /// What the identity provider says now: `suspended`, `not listed`, or `active` (a
    /// leaver by scope).
    pub left_in_idp: String,
    pub first_seen: String,
    pub deactivated: Option<String>,
    pub signed_out: Option<String>,
    pub seconds_to_deactivation: Option<f64>,
    pub seconds_to_signed_out: Option<f64>,
    /// Signed out within `leavers.sla` of first seen; `None` without an SLA or sign-out.
    pub within_sla: Option<bool>,
    pub run: Option<i64>,
    pub commit: Option<String>,
}

/// The leavers at a glance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaverSummary {
    pub leavers: u64,
    pub within_sla: u64,
    pub breaches: u64,
    /// Leavers not signed out yet, or without an SLA to judge by.
    pub unjudged: u64,
    pub sla_seconds: Option<u64>,
    pub median_seconds: Option<f64>,
    pub worst_seconds: Option<f64>,
}

/// The entitlements at a glance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub people: u64,
    pub entitlements: u64,
    pub granted_by_rule: u64,
    pub exceptions: u64,
    pub pending: u64,
    pub out_of_scope: u64,
}

/// What the export describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Header {
    /// The org's key: its workspaces' team ids.
    pub org: String,
    pub commit: String,
    pub generated_at: String,
    /// Leavers since this date.
    pub since: String,
    /// Where the data came from: the identity source, Slack, the store.
    pub sources: Vec<String>,
    /// The first run the store recorded: access older than it is "before" it.
    pub first_recorded_run: Option<String>,
}

/// The whole review, as the JSON document carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "slack-gitops access review")]
pub struct AccessReview {
    pub version: u32,
    pub header: Header,
    pub entitlements: Vec<Entitlement>,
    pub out_of_scope: Vec<OutOfScope>,
    pub leavers: Vec<LeaverRow>,
    pub leaver_summary: LeaverSummary,
    pub summary: Summary,
    /// `sha256:` over the rows (entitlements, out of scope, leavers), each as one line
    /// of JSON: [`Digest`].
    pub digest: String,
}

impl AccessReview {
    /// Recomputes the digest from the rows: whether the document is as exported.
    pub fn verify(&self) -> bool {
        let mut digest = Digest::default();
        self.entitlements.iter().for_each(|r| digest.add(r));
        self.out_of_scope.iter().for_each(|r| digest.add(r));
        self.leavers.iter().for_each(|r| digest.add(r));
        digest.finish() == self.digest
    }
}

/// The digest of the rows, accumulated as they pass.
#[derive(Default)]
pub struct Digest(Sha256);

impl Digest {
    pub fn add<T: Serialize>(&mut self, row: &T) {
        let line = serde_json::to_string(row).expect("a row serialises");
        self.0.update(line.as_bytes());
        self.0.update(b"\n");
    }

    pub fn finish(self) -> String {
        format!("sha256:{}", crate::model::hex(&self.0.finalize()))
    }
}

/// Accumulates the summary as rows pass.
#[derive(Default)]
pub struct Tally {
    pub summary: Summary,
    last_email: Option<String>,
}

impl Tally {
    pub fn add(&mut self, row: &Entitlement) {
        let summary = &mut self.summary;
        summary.entitlements += 1;
        match row.status.as_str() {
            GRANTED => summary.granted_by_rule += 1,
            EXCEPTION => summary.exceptions += 1,
            _ => summary.pending += 1,
        }
        // Rows of one person come together, accounts first.
        if self.last_email.as_deref() != Some(row.email.as_str()) && row.kind == "org" {
            summary.people += 1;
            self.last_email = Some(row.email.clone());
        }
    }
}

/// One audit event as the store recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub run: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub email: String,
    pub entitlement: String,
    pub change: String,
    pub commit: Option<String>,
    pub approval: Option<String>,
}

/// A leaver as the store recorded them.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaver {
    pub email: String,
    pub slack_id: Option<String>,
    pub first_seen: i64,
    pub deactivated_at: Option<i64>,
    pub signed_out_at: Option<i64>,
    pub run: Option<i64>,
}

/// What the store knows.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub events: Vec<Event>,
    /// (run id, started at, commit), oldest first.
    pub runs: Vec<(i64, i64, Option<String>)>,
    pub leavers: Vec<Leaver>,
}

/// Everything a review is computed from.
pub struct Input<'a> {
    pub org: &'a str,
    pub commit: &'a str,
    /// Unix milliseconds.
    pub generated_at: i64,
    pub since: i64,
    pub sources: Vec<String>,
    pub desired: &'a Desired<'a>,
    pub directory: &'a Directory,
    pub live: &'a Live,
    pub history: &'a History,
    /// The approval files at the commit.
    pub approvals: Vec<ApprovalRef>,
    pub sla_seconds: Option<u64>,
}

/// The header of a review.
pub fn header(input: &Input) -> Header {
    Header {
        org: input.org.to_string(),
        commit: input.commit.to_string(),
        generated_at: iso_time(input.generated_at),
        since: iso_time(input.since)[..10].to_string(),
        sources: input.sources.clone(),
        first_recorded_run: input.history.runs.first().map(|r| iso_time(r.1)),
    }
}

/// Lookups built once per review.
struct Index<'a> {
    input: &'a Input<'a>,
    /// (email, entitlement) -> indices into the events, oldest first.
    events: HashMap<(&'a str, &'a str), Vec<usize>>,
    commits: HashMap<i64, Option<&'a str>>,
    approvals: HashMap<&'a str, &'a ApprovalRef>,
    by_user_id: HashMap<&'a str, usize>,
    /// Live accounts by email, the active one first when there are two.
    by_email: HashMap<&'a str, usize>,
}

impl<'a> Index<'a> {
    fn new(input: &'a Input<'a>) -> Index<'a> {
        let mut events: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (i, event) in input.history.events.iter().enumerate() {
            events
                .entry((event.email.as_str(), event.entitlement.as_str()))
                .or_default()
                .push(i);
        }
        Index {
            input,
            events,
            commits: input
                .history
                .runs
                .iter()
                .map(|(id, _, commit)| (*id, commit.as_deref()))
                .collect(),
            approvals: input
                .approvals
                .iter()
                .map(|a| (a.hash.as_str(), a))
                .collect(),
            by_user_id: input
                .live
                .users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.id.as_str(), i))
                .collect(),
            by_email: {
                let mut by_email = HashMap::new();
                for (i, user) in input.live.users.iter().enumerate() {
                    let slot = by_email.entry(user.email.as_str()).or_insert(i);
                    if user.active && !input.live.users[*slot].active {
                        *slot = i;
                    }
                }
                by_email
            },
        }
    }

    /// Since when a person has held an entitlement, and its last recorded change.
    fn since(&self, email: &str, entitlement: &str) -> (String, Option<Change>) {
        let history = &self.input.history;
        let Some(indices) = self.events.get(&(email, entitlement)) else {
            return (self.before_records(), None);
        };
        let last = &history.events[*indices.last().expect("not empty")];
        // The start of the current holding: the grant after the last removal.
        let mut since = None;
        for &i in indices.iter().rev() {
            match history.events[i].change.as_str() {
                "granted" | "reactivated" => since = Some(history.events[i].at),
                "removed" | "deactivated" => break,
                _ => {}
            }
        }
        let change = Change {
            run: last.run,
            at: iso_time(last.at),
            change: last.change.clone(),
            commit: last.commit.clone().or_else(|| {
                self.commits
                    .get(&last.run)
                    .copied()
                    .flatten()
                    .map(str::to_string)
            }),
            approval: last.approval.as_deref().map(|hash| {
                self.approvals
                    .get(hash)
                    .map(|a| (*a).clone())
                    .unwrap_or_else(|| ApprovalRef {
                        hash: hash.to_string(),
                        approved_by: Vec::new(),
                        ticket: None,
                        reason: None,
                    })
            }),
        };
        let since = since.map_or_else(|| self.before_records(), iso_time);
        (since, Some(change))
    }

    fn before_records(&self) -> String {
        match self.input.history.runs.first() {
            Some((_, at, _)) => format!("before {}", iso_time(*at)),
            None => "not recorded".to_string(),
        }
    }

    fn rule(&self, grant: &Grant) -> String {
        let commit = &self.input.commit[..self.input.commit.len().min(12)];
        format!("{}@{commit}", grant.rule)
    }
}

/// A person as the rows describe them.
struct Who<'a> {
    email: &'a str,
    user: Option<&'a LiveUser>,
    idp_status: &'static str,
}

impl Who<'_> {
    fn row(
        &self,
        kind: &str,
        workspace: Option<&str>,
        name: String,
        id: Option<&str>,
    ) -> Entitlement {
        let user = self.user;
        Entitlement {
            email: self.email.to_string(),
            slack_id: user.map(|u| u.id.clone()),
            display_name: user
                .map(|u| {
                    format!("{} {}", u.given_name, u.family_name)
                        .trim()
                        .to_string()
                })
                .unwrap_or_default(),
            idp_status: self.idp_status.to_string(),
            slack_status: match user {
                Some(u) if u.active => "active",
                Some(_) => "deactivated",
                None => "no account",
            }
            .to_string(),
            account_type: match user {
                Some(u) if u.bot => "bot",
                Some(u) if u.guest.is_some() => "guest",
                _ => "member",
            }
            .to_string(),
            kind: kind.to_string(),
            workspace: workspace.map(str::to_string),
            name,
            id: id.map(str::to_string),
            status: String::new(),
            granted_since: String::new(),
            rule: None,
            via: Vec::new(),
            last_change: None,
            note: String::new(),
        }
    }
}

/// The entitlements, one row at a time, in a fixed order.
pub fn entitlements(input: &Input, emit: &mut dyn FnMut(Entitlement)) {
    let index = Index::new(input);
    accounts(&index, emit);
    usergroups(&index, emit);
    channels(&index, emit);
    roles(&index, emit);
}

fn idp_status(input: &Input, email: &str) -> (Option<PersonId>, &'static str) {
    let id = input.desired.resolution.id(email);
    let status = id
        .and_then(|id| input.desired.resolution.person(input.directory, id))
        .map_or("unknown", |p| match p.status {
            PersonStatus::Active => "active",
            PersonStatus::Suspended => "suspended",
        });
    (id, status)
}

/// Accounts (the org) and workspaces of every active account, then pending accounts.
fn accounts(index: &Index, emit: &mut dyn FnMut(Entitlement)) {
    let input = index.input;
    let desired = input.desired;
    let org = input.org;
    let mut wanted: Vec<bool> = vec![false; desired.resolution.emails().len()];
    for &id in &desired.accounts {
        wanted[id as usize] = true;
    }
    let mut seen = vec![false; wanted.len()];
    for user in input.live.users.iter().filter(|u| u.active) {
        let (person, idp) = idp_status(input, &user.email);
        let who = Who {
            email: &user.email,
            user: Some(user),
            idp_status: idp,
        };
        let by_rule = person.is_some_and(|id| wanted[id as usize]);
        if let Some(id) = person {
            seen[id as usize] = true;
        }
        let mut row = who.row("org", None, org.to_string(), None);
        (row.granted_since, row.last_change) = index.since(&user.email, "account");
        match person.filter(|_| by_rule) {
            Some(id) => {
                let grant = desired.scope_grant(input.directory, id);
                row.status = GRANTED.into();
                row.rule = Some(index.rule(&grant));
                row.via = grant.via;
            }
            None => {
                row.status = EXCEPTION.into();
                row.note = if desired.protected.contains(&user.email) {
                    "protected: kept although no users.scope rule selects them".into()
                } else {
                    account_note(user, idp).into()
                };
            }
        }
        let (status, rule, via) = (row.status.clone(), row.rule.clone(), row.via.clone());
        emit(row);
        for workspace in &user.workspaces {
            let mut row = who.row(
                "workspace",
                Some(workspace),
                workspace.clone(),
                Some(workspace),
            );
            (row.granted_since, row.last_change) =
                index.since(&user.email, &format!("workspace {workspace}"));
            row.status = status.clone();
            row.rule = rule.clone();
            row.via = via.clone();
            if status == EXCEPTION {
                row.note = "the account itself is an exception".into();
            }
            emit(row);
        }
    }
    // Accounts a rule grants that Slack does not have (or has deactivated) yet.
    for &id in &desired.accounts {
        if seen[id as usize] {
            continue;
        }
        let email = desired.email(id);
        // A deactivated account the next apply reactivates, or none yet.
        let user = index.by_email.get(email).map(|&i| &input.live.users[i]);
        let who = Who {
            email,
            user,
            idp_status: "active",
        };
        let grant = desired.scope_grant(input.directory, id);
        let mut row = who.row("org", None, org.to_string(), None);
        row.status = PENDING.into();
        row.granted_since = "not yet".into();
        row.rule = Some(index.rule(&grant));
        row.via = grant.via;
        row.note = match desired.provisioning {
            crate::config::types::Provisioning::JustInTime => "awaiting first login (SSO)",
            crate::config::types::Provisioning::Eager => "to be created by the next apply",
        }
        .into();
        emit(row);
    }
}

fn account_note(user: &LiveUser, idp: &str) -> &'static str {
    match (user.bot, user.guest.is_some(), idp) {
        (true, _, _) => "a bot: accounts of apps are not governed by users.scope",
        (_, true, _) => "a guest: guests are not governed by users.scope",
        (_, _, "unknown") => "ghost account: unknown to the identity provider; awaiting removal",
        (_, _, "suspended") => "suspended in the identity provider; awaiting removal",
        _ => "out of scope: in none of the users.scope groups; awaiting removal",
    }
}

/// Members of the managed usergroups: by rule, hand-added, or still to be added.
fn usergroups(index: &Index, emit: &mut dyn FnMut(Entitlement)) {
    let input = index.input;
    let live_groups: HashMap<(&str, &str), &crate::model::live::LiveUsergroup> = input
        .live
        .usergroups
        .iter()
        .map(|g| ((g.workspace.as_str(), g.handle.as_str()), g))
        .collect();
    for group in &input.desired.usergroups {
        let live = live_groups.get(&(group.workspace.as_str(), group.handle.as_str()));
        let members: &[String] = live.map_or(&[], |g| &g.members);
        let id = live.map(|g| g.id.as_str());
        let grants: BTreeMap<PersonId, Grant> = group
            .members
            .iter()
            .map(|&p| (p, input.desired.grant(input.directory, group.rule, p)))
            .collect();
        let name = format!("@{}", group.handle);
        let key = format!("{}/@{}", group.workspace, group.handle);
        membership(
            index,
            Target {
                kind: "usergroup",
                workspace: &group.workspace,
                name: &name,
                key: &key,
                id,
            },
            members,
            &grants,
            emit,
        );
    }
}

/// Members of the managed channels (whose members were read).
fn channels(index: &Index, emit: &mut dyn FnMut(Entitlement)) {
    let input = index.input;
    let live_channels: HashMap<(&str, &str), &crate::model::live::LiveChannel> = input
        .live
        .channels
        .iter()
        .map(|c| ((c.workspace.as_str(), c.name.as_str()), c))
        .collect();
    for channel in &input.desired.channels {
        let live = live_channels.get(&(channel.workspace.as_str(), channel.name.as_str()));
        if live.is_none() && channel.rule.is_none() {
            // A usergroup's default channel that does not exist: no rule creates it, so
            // nobody is granted it (the plan skips it too).
            continue;
        }
        let members: &[String] = live.and_then(|c| c.members.as_deref()).unwrap_or_default();
        let grants: BTreeMap<PersonId, Grant> = channel
            .members
            .iter()
            .filter_map(|(&p, rules)| {
                let rule = *rules.first()?;
                Some((p, input.desired.grant(input.directory, rule, p)))
            })
            .collect();
        let name = format!("#{}", channel.name);
        let key = format!("{}/#{}", channel.workspace, channel.name);
        membership(
            index,
            Target {
                kind: "channel",
                workspace: &channel.workspace,
                name: &name,
                key: &key,
                id: live.map(|c| c.id.as_str()),
            },
            members,
            &grants,
            emit,
        );
    }
}

/// A usergroup or channel the rows are about.
struct Target<'a> {
    kind: &'a str,
    workspace: &'a str,
    name: &'a str,
    /// The audit trail's name for it: `T/@handle`, `T/#name`.
    key: &'a str,
    id: Option<&'a str>,
}

/// The rows of one usergroup or channel: live members (by rule or exceptions), then
/// people a rule grants who are not in it yet.
fn membership(
    index: &Index,
    target: Target,
    members: &[String],
    grants: &BTreeMap<PersonId, Grant>,
    emit: &mut dyn FnMut(Entitlement),
) {
    let input = index.input;
    let mut present: Vec<PersonId> = Vec::new();
    for member in members {
        let Some(&i) = index.by_user_id.get(member.as_str()) else {
            continue;
        };
        let user = &input.live.users[i];
        if !user.active {
            continue;
        }
        let (person, idp) = idp_status(input, &user.email);
        let who = Who {
            email: &user.email,
            user: Some(user),
            idp_status: idp,
        };
        let mut row = who.row(
            target.kind,
            Some(target.workspace),
            target.name.into(),
            target.id,
        );
        (row.granted_since, row.last_change) = index.since(&user.email, target.key);
        match person.and_then(|p| grants.get(&p).map(|g| (p, g))) {
            Some((p, grant)) => {
                present.push(p);
                row.status = GRANTED.into();
                row.rule = Some(index.rule(grant));
                row.via = grant.via.clone();
            }
            None => {
                row.status = EXCEPTION.into();
                row.note = if input.desired.protected.contains(&user.email) {
                    "protected: kept although no rule selects them".into()
                } else if user.bot {
                    "a bot: apps' accounts are not governed by the config".into()
                } else {
                    "no rule selects them: added by hand, or awaiting removal".into()
                };
            }
        }
        emit(row);
    }
    present.sort_unstable();
    for (&p, grant) in grants {
        if present.binary_search(&p).is_ok() {
            continue;
        }
        let email = input.desired.email(p);
        let user = index
            .by_email
            .get(email)
            .map(|&i| &input.live.users[i])
            .filter(|u| u.active);
        let who = Who {
            email,
            user,
            idp_status: "active",
        };
        let mut row = who.row(
            target.kind,
            Some(target.workspace),
            target.name.into(),
            target.id,
        );
        row.status = PENDING.into();
        row.granted_since = "not yet".into();
        row.rule = Some(index.rule(grant));
        row.via = grant.via.clone();
        row.note = "to be added by the next apply".into();
        emit(row);
    }
}

/// Admin and owner roles: the config grants none, so each is an exception to review.
fn roles(index: &Index, emit: &mut dyn FnMut(Entitlement)) {
    let input = index.input;
    for user in input.live.users.iter().filter(|u| u.active) {
        let roles = [
            (user.primary_owner, "primary owner"),
            (user.owner && !user.primary_owner, "owner"),
            (user.admin && !user.owner, "admin"),
        ];
        for (held, role) in roles {
            if !held {
                continue;
            }
            let (_, idp) = idp_status(input, &user.email);
            let who = Who {
                email: &user.email,
                user: Some(user),
                idp_status: idp,
            };
            let workspace = user.workspaces.first().map(String::as_str);
            let mut row = who.row("role", workspace, role.to_string(), None);
            let entitlement = format!("{role} role in {}", workspace.unwrap_or_default());
            (row.granted_since, row.last_change) = index.since(&user.email, &entitlement);
            row.status = EXCEPTION.into();
            row.note = "roles are held in Slack; no rule in the config grants them".into();
            emit(row);
        }
    }
}

/// Usergroups and channels the config does not manage.
pub fn out_of_scope(input: &Input) -> Vec<OutOfScope> {
    let managed_groups: std::collections::HashSet<(&str, &str)> = input
        .desired
        .usergroups
        .iter()
        .map(|g| (g.workspace.as_str(), g.handle.as_str()))
        .collect();
    let managed_channels: std::collections::HashSet<(&str, &str)> = input
        .desired
        .channels
        .iter()
        .map(|c| (c.workspace.as_str(), c.name.as_str()))
        .collect();
    let groups = input
        .live
        .usergroups
        .iter()
        .filter(|g| !managed_groups.contains(&(g.workspace.as_str(), g.handle.as_str())))
        .map(|g| OutOfScope {
            kind: "usergroup".into(),
            workspace: g.workspace.clone(),
            name: format!("@{}", g.handle),
            id: g.id.clone(),
            members: Some(g.members.len() as u64),
        });
    let channels = input
        .live
        .channels
        .iter()
        .filter(|c| !managed_channels.contains(&(c.workspace.as_str(), c.name.as_str())))
        .map(|c| OutOfScope {
            kind: "channel".into(),
            workspace: c.workspace.clone(),
            name: format!("#{}", c.name),
            id: c.id.clone(),
            members: c.num_members.or(c.members.as_ref().map(|m| m.len() as u64)),
        });
    groups.chain(channels).collect()
}

/// The leavers first seen since `input.since`, and their summary.
pub fn leavers(input: &Input) -> (Vec<LeaverRow>, LeaverSummary) {
    let commits: HashMap<i64, Option<&str>> = input
        .history
        .runs
        .iter()
        .map(|(id, _, commit)| (*id, commit.as_deref()))
        .collect();
    let mut rows = Vec::new();
    let mut times = Vec::new();
    let mut summary = LeaverSummary {
        sla_seconds: input.sla_seconds,
        ..LeaverSummary::default()
    };
    for leaver in input
        .history
        .leavers
        .iter()
        .filter(|l| l.first_seen >= input.since)
    {
        let (_, idp) = idp_status(input, &leaver.email);
        let seconds = |at: Option<i64>| at.map(|at| (at - leaver.first_seen) as f64 / 1000.0);
        let signed_out = seconds(leaver.signed_out_at);
        let within = signed_out
            .zip(input.sla_seconds)
            .map(|(s, sla)| s <= sla as f64);
        summary.leavers += 1;
        match within {
            Some(true) => summary.within_sla += 1,
            Some(false) => summary.breaches += 1,
            None => summary.unjudged += 1,
        }
        times.extend(signed_out);
        rows.push(LeaverRow {
            email: leaver.email.clone(),
            slack_id: leaver.slack_id.clone(),
            left_in_idp: match idp {
                "unknown" => "not listed",
                other => other,
            }
            .to_string(),
            first_seen: iso_time(leaver.first_seen),
            deactivated: leaver.deactivated_at.map(iso_time),
            signed_out: leaver.signed_out_at.map(iso_time),
            seconds_to_deactivation: seconds(leaver.deactivated_at),
            seconds_to_signed_out: signed_out,
            within_sla: within,
            run: leaver.run,
            commit: leaver
                .run
                .and_then(|r| commits.get(&r).copied().flatten())
                .map(str::to_string),
        });
    }
    times.sort_by(f64::total_cmp);
    summary.worst_seconds = times.last().copied();
    summary.median_seconds = (!times.is_empty()).then(|| {
        let mid = times.len() / 2;
        if times.len() % 2 == 0 {
            (times[mid - 1] + times[mid]) / 2.0
        } else {
            times[mid]
        }
    });
    (rows, summary)
}

/// Builds the whole review in memory (the HTML page and tests use it; exports of large
/// orgs stream with [`entitlements`] instead).
pub fn build(input: &Input) -> AccessReview {
    let mut rows = Vec::new();
    entitlements(input, &mut |row| rows.push(row));
    let out_of_scope = out_of_scope(input);
    let (leaver_rows, leaver_summary) = leavers(input);
    let mut digest = Digest::default();
    let mut tally = Tally::default();
    for row in &rows {
        digest.add(row);
        tally.add(row);
    }
    out_of_scope.iter().for_each(|r| digest.add(r));
    leaver_rows.iter().for_each(|r| digest.add(r));
    let mut summary = tally.summary;
    summary.out_of_scope = out_of_scope.len() as u64;
    AccessReview {
        version: REVIEW_VERSION,
        header: header(input),
        entitlements: rows,
        out_of_scope,
        leavers: leaver_rows,
        leaver_summary,
        summary,
        digest: digest.finish(),
    }
}
