//! What the config asks for, resolved against the identity directory: who should have a
//! Slack account, who belongs in each usergroup and channel, and which rule (file:line)
//! says so. Pure: config, directory and resolution in, [`Desired`] out.

use std::collections::{BTreeMap, BTreeSet};

use sha2::Digest;

use crate::config::types::{MappingsFile, MemberSpec, Provisioning, SlackPlan};
use crate::config::{Located, Repository};
use crate::model::directory::{Directory, PersonId, PersonStatus, Resolution};

/// A place in the config repository, for provenance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RuleRef {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A mapping rule: where it is and whom it selects, for provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub at: RuleRef,
    /// What the rule configures: `usergroup @eng` or `channel #eng-oncall`.
    pub target: String,
    pub selector: MemberSpec,
}

/// An index into [`Desired::rules`].
pub type RuleId = u32;

/// A usergroup as the config wants it, in one workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredUsergroup {
    pub rule: RuleId,
    /// The team id of the workspace.
    pub workspace: String,
    pub handle: String,
    pub name: String,
    pub description: String,
    /// Default channel names.
    pub channels: Vec<String>,
    /// The active people it selects, sorted.
    pub members: Vec<PersonId>,
}

/// A channel as the config wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredChannel {
    /// The `channels:` entry, or `None` for a channel only named as a usergroup's default.
    pub rule: Option<RuleId>,
    pub workspace: String,
    pub name: String,
    pub private: bool,
    pub remove_unlisted: bool,
    /// The people who should be in it, and the rules that put each there.
    pub members: BTreeMap<PersonId, Vec<RuleId>>,
}

/// The whole desired state. People are ids of the [`Resolution`] it was computed from.
#[derive(Debug, Clone)]
pub struct Desired<'r> {
    pub resolution: &'r Resolution,
    /// The Slack plan: what the org's API offers (workspace assignment and session
    /// resets are Enterprise Grid's).
    pub slack_plan: SlackPlan,
    pub provisioning: Provisioning,
    /// The IdP groups of `users.scope`, and where the config says so.
    pub scope: Vec<String>,
    pub scope_rule: RuleRef,
    /// Active people in `users.scope`, sorted: they should have an active account.
    pub accounts: Vec<PersonId>,
    /// Per person: the workspaces (indices into `workspace_ids`) their usergroups and
    /// channels need.
    pub workspaces: Vec<Vec<u16>>,
    /// Team ids, in the order `workspaces` refers to them.
    pub workspace_ids: Vec<String>,
    pub rules: Vec<Rule>,
    pub usergroups: Vec<DesiredUsergroup>,
    pub channels: Vec<DesiredChannel>,
    /// Emails that are never deactivated or removed.
    pub protected: BTreeSet<String>,
}

impl Desired<'_> {
    pub fn email(&self, id: PersonId) -> &str {
        self.resolution.email(id)
    }

    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[id as usize]
    }

    /// Whether a person should have an account.
    pub fn wants_account(&self, id: PersonId) -> bool {
        self.accounts.binary_search(&id).is_ok()
    }

    /// A short digest of what selects the members of each managed usergroup and channel,
    /// keyed `T0000MAIN/@eng` and `T0000MAIN/#eng-oncall`. The JSON plan keeps them, so a
    /// later plan against it (`--baseline`) can tell a removal a mapping change caused
    /// from drift in Slack. A channel's digest covers its own rule, `remove_unlisted`,
    /// and the rules of the usergroups that name it as a default channel.
    pub fn mapping_digests(&self) -> BTreeMap<String, String> {
        let selector = |rule: RuleId| {
            let spec = &self.rule(rule).selector;
            format!(
                "groups={} users={} exclude={} exclude_users={}",
                sorted_list(spec.groups.iter().map(String::as_str)),
                sorted_list(spec.users.iter().map(|e| e.as_str())),
                sorted_list(spec.exclude.iter().map(String::as_str)),
                sorted_list(spec.exclude_users.iter().map(|e| e.as_str())),
            )
        };
        let digest = |text: &str| crate::model::hex(&sha2::Sha256::digest(text.as_bytes())[..8]);
        let mut by_channel: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
        let mut digests = BTreeMap::new();
        for group in &self.usergroups {
            let text = selector(group.rule);
            for channel in &group.channels {
                by_channel
                    .entry((group.workspace.as_str(), channel.as_str()))
                    .or_default()
                    .push(format!("default of @{}: {text}", group.handle));
            }
            digests.insert(
                format!("{}/@{}", group.workspace, group.handle),
                digest(&text),
            );
        }
        for channel in &self.channels {
            let mut parts = by_channel
                .remove(&(channel.workspace.as_str(), channel.name.as_str()))
                .unwrap_or_default();
            if let Some(rule) = channel.rule {
                parts.push(format!(
                    "own: {} remove_unlisted={}",
                    selector(rule),
                    channel.remove_unlisted
                ));
            }
            parts.sort_unstable();
            digests.insert(
                format!("{}/#{}", channel.workspace, channel.name),
                digest(&parts.join("\n")),
            );
        }
        digests
    }

    /// How a rule selects a person: listed by email, or the chain of IdP groups from the
    /// rule's group down to the one that lists them.
    pub fn grant(&self, directory: &Directory, rule: RuleId, id: PersonId) -> super::action::Grant {
        let rule = self.rule(rule);
        let email = self.email(id);
        let via = if rule.selector.users.iter().any(|e| e.as_str() == email) {
            Vec::new()
        } else {
            rule.selector
                .groups
                .iter()
                .find_map(|g| self.resolution.chain(directory, g, id))
                .unwrap_or_default()
        };
        super::action::Grant {
            rule: rule.at.clone(),
            via,
        }
    }

    /// How `users.scope` selects a person for an account.
    pub fn scope_grant(&self, directory: &Directory, id: PersonId) -> super::action::Grant {
        super::action::Grant {
            rule: self.scope_rule.clone(),
            via: self
                .scope
                .iter()
                .find_map(|g| self.resolution.chain(directory, g, id))
                .unwrap_or_default(),
        }
    }

    /// The team ids a person needs.
    pub fn workspaces_of(&self, id: PersonId) -> impl Iterator<Item = &str> {
        self.workspaces[id as usize]
            .iter()
            .map(|&w| self.workspace_ids[w as usize].as_str())
    }
}

/// "a,b,c": the items sorted and joined, so the order a file lists them in does not count.
fn sorted_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut items: Vec<&str> = items.collect();
    items.sort_unstable();
    items.join(",")
}

/// Sorted ids in `a` that are not in `b` (both sorted).
fn difference(a: &[PersonId], b: &[PersonId]) -> Vec<PersonId> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j == b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

/// The active people a member spec selects, sorted.
fn select(spec: &MemberSpec, resolution: &Resolution, active: &[bool]) -> Vec<PersonId> {
    let mut chosen: Vec<PersonId> = spec
        .users
        .iter()
        .filter_map(|e| resolution.id(e.as_str()))
        .collect();
    for group in &spec.groups {
        chosen.extend_from_slice(resolution.members(group).unwrap_or_default());
    }
    if spec.groups.len() + usize::from(!spec.users.is_empty()) > 1 {
        chosen.sort_unstable();
        chosen.dedup();
    }
    for group in &spec.exclude {
        chosen = difference(&chosen, resolution.members(group).unwrap_or_default());
    }
    let mut excluded: Vec<PersonId> = spec
        .exclude_users
        .iter()
        .filter_map(|e| resolution.id(e.as_str()))
        .collect();
    excluded.sort_unstable();
    chosen = difference(&chosen, &excluded);
    chosen.retain(|&id| active[id as usize]);
    chosen
}

/// Resolves the config against the directory: who has an account, the rules, the
/// usergroups and channels they fill, the workspaces each person needs, who is protected.
pub fn desired<'r>(
    repository: &Repository,
    directory: &Directory,
    resolution: &'r Resolution,
) -> Desired<'r> {
    let config = &repository.config.value;
    let active = active_people(directory, resolution);
    let mut accounts: Vec<PersonId> = Vec::new();
    for group in &config.users.scope {
        accounts.extend_from_slice(resolution.members(group).unwrap_or_default());
    }
    accounts.sort_unstable();
    accounts.dedup();
    accounts.retain(|&id| active[id as usize]);

    let mut targets = Targets::default();
    targets.channel_rules(repository, resolution, &active);
    targets.usergroup_rules(repository, resolution, &active);
    let Targets {
        rules,
        usergroups,
        channels,
    } = targets;
    let channels: Vec<DesiredChannel> = channels.into_values().collect();
    let (workspace_ids, workspaces) =
        workspace_needs(resolution.emails().len(), &usergroups, &channels);
    Desired {
        resolution,
        slack_plan: config.slack.plan,
        provisioning: config.users.provisioning,
        scope: config.users.scope.clone(),
        scope_rule: RuleRef {
            file: repository.config.file.clone(),
            line: repository
                .config
                .span("/users/scope")
                .map_or(0, |s| s.start.line),
        },
        accounts,
        workspaces,
        workspace_ids,
        rules,
        usergroups,
        channels,
        protected: protected_people(repository, resolution),
    }
}

/// Per person id: whether the identity provider has them active.
fn active_people(directory: &Directory, resolution: &Resolution) -> Vec<bool> {
    (0..resolution.emails().len() as PersonId)
        .map(|id| {
            resolution
                .person(directory, id)
                .is_some_and(|p| p.status == PersonStatus::Active)
        })
        .collect()
}

/// The rules of the mapping files and the usergroups and channels they fill, built in
/// rule order: every channel mapping first, then every usergroup mapping (whose
/// `channels:` add their members to those channels).
#[derive(Default)]
struct Targets {
    rules: Vec<Rule>,
    usergroups: Vec<DesiredUsergroup>,
    channels: BTreeMap<(String, String), DesiredChannel>,
}

impl Targets {
    /// Adds a rule declared at `pointer` of `file`.
    fn rule(
        &mut self,
        file: &Located<MappingsFile>,
        pointer: &str,
        target: String,
        selector: MemberSpec,
    ) -> RuleId {
        let rule = self.rules.len() as RuleId;
        self.rules.push(Rule {
            at: RuleRef {
                file: file.file.clone(),
                line: file.span(pointer).map_or(0, |s| s.start.line),
            },
            target,
            selector,
        });
        rule
    }

    /// Channel mappings: each a rule, and a channel with the people it selects.
    fn channel_rules(&mut self, repository: &Repository, resolution: &Resolution, active: &[bool]) {
        let config = &repository.config.value;
        for file in &repository.mappings {
            for (index, spec) in file.value.channels.iter().enumerate() {
                let Some(workspace) = config.team_id(&spec.workspace) else {
                    continue;
                };
                let selector = spec.members.clone().unwrap_or_default();
                let target = format!("channel #{}", spec.name.as_str());
                let rule = self.rule(file, &format!("/channels/{index}"), target, selector);
                let members = select(&self.rules[rule as usize].selector, resolution, active)
                    .into_iter()
                    .map(|id| (id, vec![rule]))
                    .collect();
                self.channels.insert(
                    (workspace.clone(), spec.name.as_str().to_string()),
                    DesiredChannel {
                        rule: Some(rule),
                        workspace,
                        name: spec.name.as_str().to_string(),
                        private: spec.private,
                        remove_unlisted: spec.remove_unlisted,
                        members,
                    },
                );
            }
        }
    }

    /// Usergroup mappings: each a rule, a usergroup per workspace, and its members added
    /// to the channels it names (a channel no mapping declares is created as public).
    fn usergroup_rules(
        &mut self,
        repository: &Repository,
        resolution: &Resolution,
        active: &[bool],
    ) {
        let config = &repository.config.value;
        for file in &repository.mappings {
            for (index, spec) in file.value.usergroups.iter().enumerate() {
                let target = format!("usergroup @{}", spec.handle.as_str());
                let pointer = format!("/usergroups/{index}");
                let rule = self.rule(file, &pointer, target, spec.members.clone());
                let members = select(&spec.members, resolution, active);
                for workspace in spec.workspaces.iter().filter_map(|w| config.team_id(w)) {
                    for channel in &spec.channels {
                        self.channel_members(&workspace, channel.as_str(), rule, &members);
                    }
                    self.usergroups.push(DesiredUsergroup {
                        rule,
                        workspace,
                        handle: spec.handle.as_str().to_string(),
                        name: spec.name.clone(),
                        description: spec.description.clone().unwrap_or_default(),
                        channels: spec
                            .channels
                            .iter()
                            .map(|c| c.as_str().to_string())
                            .collect(),
                        members: members.clone(),
                    });
                }
            }
        }
    }

    /// Adds `members`, granted by `rule`, to a channel.
    fn channel_members(&mut self, workspace: &str, name: &str, rule: RuleId, members: &[PersonId]) {
        let entry = self
            .channels
            .entry((workspace.to_string(), name.to_string()))
            .or_insert_with(|| DesiredChannel {
                rule: None,
                workspace: workspace.to_string(),
                name: name.to_string(),
                private: false,
                remove_unlisted: false,
                members: BTreeMap::new(),
            });
        for &id in members {
            let rules = entry.members.entry(id).or_default();
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
    }
}

/// The workspaces each person's usergroups and channels need: the workspace ids in first
/// use order, and per person id the indexes of theirs.
fn workspace_needs(
    people: usize,
    usergroups: &[DesiredUsergroup],
    channels: &[DesiredChannel],
) -> (Vec<String>, Vec<Vec<u16>>) {
    let mut workspace_ids: Vec<String> = Vec::new();
    let mut workspaces: Vec<Vec<u16>> = vec![Vec::new(); people];
    let mut need = |workspace: &str, id: PersonId| {
        let w = match workspace_ids.iter().position(|t| t == workspace) {
            Some(w) => w as u16,
            None => {
                workspace_ids.push(workspace.to_string());
                (workspace_ids.len() - 1) as u16
            }
        };
        let have = &mut workspaces[id as usize];
        if !have.contains(&w) {
            have.push(w);
        }
    };
    for group in usergroups {
        for &id in &group.members {
            need(&group.workspace, id);
        }
    }
    for channel in channels {
        for &id in channel.members.keys() {
            need(&channel.workspace, id);
        }
    }
    (workspace_ids, workspaces)
}

/// The emails of protected people: named in a policy, or members of a protected group.
pub(crate) fn protected_people(
    repository: &Repository,
    resolution: &Resolution,
) -> BTreeSet<String> {
    let policies = repository.policies.iter().map(|p| &p.value.protected);
    let mut protected: BTreeSet<String> = policies
        .clone()
        .flat_map(|p| p.users.iter().map(|e| e.as_str().to_string()))
        .collect();
    for group in policies.flat_map(|p| p.groups.iter()) {
        protected.extend(
            resolution
                .member_emails(group)
                .into_iter()
                .map(str::to_string),
        );
    }
    protected
}
