//! Adopting an existing Slack org: from live Slack and the identity directory, the
//! mappings that reproduce what is there, each with the rule behind it and its
//! exceptions. Pure: the repository as it is, the directory and live Slack in; the files
//! to write and a report out.
//!
//! What is imported is chosen so that the plan right after is a no-op for memberships,
//! except for accounts the plan creates or deactivates (joiners and leavers are the
//! identity provider's to decide, and the plan shows them):
//!
//! - a usergroup's rule selects exactly its live members who are active in the identity
//!   provider (groups, then `users` and `exclude_users` for the exceptions). A usergroup
//!   that the plan would still change is left unmanaged, saying why: it is disabled, it
//!   holds bots or guests the identity provider does not know (they would be removed),
//!   it holds a primary owner the identity provider does not list as active and no
//!   policy protects (their deactivation is blocked, so they would only be removed), or
//!   nobody in it would keep an account (it would be disabled);
//! - a protected account the identity provider does not list as active stays where it
//!   is: the plan never deactivates or removes it. The starting policy protects the
//!   account the tool acts as and the primary owner;
//! - a channel's rule (its own, and the usergroups that name it as a default channel)
//!   selects only people already in it, since channels are never emptied by adoption
//!   (`remove_unlisted` stays off): a usergroup names a channel only when, in every
//!   workspace of the usergroup, that channel holds all of its members.

pub mod infer;
pub mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::config::Repository;
use crate::model::directory::{Directory, PersonId, PersonStatus, Resolution};
use crate::model::live::{Live, LiveUser};

use infer::{Groups, Inferred, Scratch};

/// How the written mappings are split into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitBy {
    /// `mappings/<prefix>.yaml` by the handle's or name's first word (`eng-backend` ->
    /// `eng`), as teams own them.
    Prefix,
    /// `mappings/<workspace>.yaml`, by the (first) workspace.
    Workspace,
    /// One `mappings/imported.yaml`.
    One,
}

/// What to import and how to write it.
#[derive(Debug, Clone)]
pub struct Options {
    pub split_by: SplitBy,
    /// Globs (`*`, `?`): `@pattern` selects usergroups by handle, `#pattern` channels by
    /// name, a bare pattern both. Empty: everything.
    pub only: Vec<String>,
    /// Paths (relative to the repository) that exist and must not be written: a mapping
    /// whose file name is taken goes to `<name>-2.yaml`, `-3`, and so on.
    pub taken: BTreeSet<String>,
    /// Emails the starting policy protects: the account the tool acts as (the primary
    /// owner is added from live Slack).
    pub protect: Vec<String>,
}

impl Options {
    /// Whether this import writes the starting policy: the repository has none, and
    /// `policies/default.yaml` is free.
    pub(crate) fn writes_starting_policy(&self, repository: &Repository) -> bool {
        repository.policies.is_empty() && !self.taken.contains("policies/default.yaml")
    }

    /// The emails the starting policy protects: the account the tool acts as and the
    /// primary owner(s), sorted, each once.
    pub(crate) fn starting_protected(&self, live: &Live) -> BTreeSet<String> {
        let owners = live.users.iter().filter(|u| u.active && u.primary_owner);
        self.protect
            .iter()
            .cloned()
            .chain(owners.map(|u| u.email.clone()))
            .filter(|e| crate::model::Email::parse(e).is_ok())
            .collect()
    }
}

/// A usergroup or channel written into a mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imported {
    /// `@eng` or `#eng-oncall`.
    pub target: String,
    /// Workspace names (of the config).
    pub workspaces: Vec<String>,
    /// The mapping file, relative to the repository.
    pub file: String,
    /// Live members the rule is about: active in the identity provider.
    pub members: usize,
    /// How many of them the rule's groups (and, for a channel, its usergroups) select.
    pub explained: usize,
    pub groups: Vec<String>,
    pub exclude: Vec<String>,
    /// A channel's usergroups: those that name it as a default channel.
    pub usergroups: Vec<String>,
    /// In no group of the rule: probably added by hand. Listed as `users`.
    pub added_by_hand: Vec<String>,
    /// Selected by the rule's groups, not a member: listed as `exclude_users`.
    pub left_out: Vec<String>,
    /// Suspended in the identity provider but a member: a missed deprovision. The plan
    /// deactivates them.
    pub missed_deprovisions: Vec<String>,
    /// Members the identity provider does not know: the plan deactivates them.
    pub unknown: Vec<String>,
    /// Members the identity provider does not list as active whom a policy protects (or
    /// the starting policy will): the plan keeps them and never deactivates them.
    pub protected: Vec<String>,
}

/// A usergroup or channel left unmanaged, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Unmanaged {
    pub target: String,
    pub workspace: String,
    pub why: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub usergroups: Vec<Imported>,
    pub channels: Vec<Imported>,
    pub unmanaged: Vec<Unmanaged>,
    /// Files written (relative paths), in order.
    pub files: Vec<String>,
    /// Files an earlier import wrote that `--force` set aside and nothing replaced.
    pub removed: Vec<String>,
}

/// The files to write, relative to the repository, and the report.
#[derive(Debug, Clone)]
pub struct Adoption {
    pub files: Vec<(String, String)>,
    pub report: Report,
}

/// Whether `text` matches `pattern`: `*` any run, `?` any one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            back = Some((i, j));
            i += 1;
        } else if let Some((star, at)) = back {
            i = star + 1;
            j = at + 1;
            back = Some((star, at + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

impl Options {
    fn wants(&self, sigil: char, name: &str) -> bool {
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|pattern| match pattern.strip_prefix(sigil) {
                    Some(rest) => glob_match(rest, name),
                    None if pattern.starts_with(['@', '#']) => false,
                    None => glob_match(pattern, name),
                })
    }

    /// Whether usergroup `@handle` is to be imported.
    pub fn wants_usergroup(&self, handle: &str) -> bool {
        self.wants('@', handle)
    }

    /// Whether channel `#name` is to be imported.
    pub fn wants_channel(&self, name: &str) -> bool {
        self.wants('#', name)
    }
}

/// The org as the import sees it: people by id, who has an account, who is in scope.
struct Org<'a> {
    repository: &'a Repository,
    resolution: Resolution,
    live: &'a Live,
    /// Per person id: active in the identity provider.
    active: Vec<bool>,
    /// Per person id: has an active Slack account.
    has_account: Vec<bool>,
    /// Per person id: in `users.scope`, so the plan keeps (or makes) their account.
    in_scope: Vec<bool>,
    /// Live user id -> index.
    users: HashMap<&'a str, usize>,
    /// Team id -> workspace name.
    workspace_names: BTreeMap<String, String>,
    /// Emails the plan will neither deactivate nor remove: the repository's protected
    /// people and, when this import writes the starting policy, those it protects.
    protected: BTreeSet<String>,
    groups: Groups,
}

/// A live member as the import classifies them.
enum Member {
    /// Active in the identity provider: the rule is about them.
    Person(PersonId),
    Suspended(String),
    /// Unknown to the identity provider, and the plan deactivates them.
    Unknown(String),
    /// Not active in the identity provider, but protected: the plan keeps them.
    Protected(String),
    /// A primary owner not active in the identity provider and not protected: the plan
    /// blocks their deactivation and would remove them from what the config manages.
    Owner(String),
    /// A bot or guest the identity provider does not know: the plan would remove them
    /// from a usergroup without deactivating them.
    Foreign(String),
    /// A deactivated account, or an id Slack no longer lists: not a member to keep.
    Gone,
}

impl<'a> Org<'a> {
    fn new(
        repository: &'a Repository,
        directory: &Directory,
        live: &'a Live,
        options: &Options,
    ) -> Org<'a> {
        let resolution = directory.resolve();
        let mut protected = crate::plan::desired::protected_people(repository, &resolution);
        if options.writes_starting_policy(repository) {
            protected.extend(options.starting_protected(live));
        }
        let people = resolution.emails().len();
        let active: Vec<bool> = (0..people as PersonId)
            .map(|id| {
                resolution
                    .person(directory, id)
                    .is_some_and(|p| p.status == PersonStatus::Active)
            })
            .collect();
        let mut has_account = vec![false; people];
        let mut users = HashMap::with_capacity(live.users.len());
        for (i, user) in live.users.iter().enumerate() {
            users.insert(user.id.as_str(), i);
            if let (true, Some(id)) = (user.active, resolution.id(&user.email)) {
                has_account[id as usize] = true;
            }
        }
        let mut in_scope = vec![false; people];
        for group in &repository.config.value.users.scope {
            for &id in resolution.members(group).unwrap_or_default() {
                in_scope[id as usize] = active[id as usize];
            }
        }
        let workspace_names = repository
            .config
            .value
            .slack
            .workspaces
            .iter()
            .map(|(name, team)| (team.as_str().to_string(), name.clone()))
            .collect();
        let names: Vec<String> = directory.group_names().into_iter().collect();
        let groups = Groups::new(&resolution, &names, &active);
        Org {
            repository,
            resolution,
            live,
            active,
            has_account,
            in_scope,
            users,
            workspace_names,
            protected,
            groups,
        }
    }

    fn member(&self, user_id: &str) -> Member {
        let Some(&i) = self.users.get(user_id) else {
            return Member::Gone;
        };
        let user: &LiveUser = &self.live.users[i];
        if !user.active {
            return Member::Gone;
        }
        let email = user.email.clone();
        match self.resolution.id(&user.email) {
            Some(id) if self.active[id as usize] => Member::Person(id),
            _ if self.protected.contains(&user.email) => Member::Protected(email),
            _ if user.primary_owner => Member::Owner(email),
            Some(_) => Member::Suspended(email),
            None if user.bot || user.guest.is_some() => Member::Foreign(email),
            None => Member::Unknown(email),
        }
    }

    fn emails(&self, ids: &[PersonId]) -> Vec<String> {
        ids.iter()
            .map(|&id| self.resolution.email(id).to_string())
            .collect()
    }
}

/// Live members sorted into the people a rule is about and the rest.
#[derive(Default)]
struct Members {
    people: Vec<PersonId>,
    suspended: Vec<String>,
    unknown: Vec<String>,
    foreign: Vec<String>,
    protected: Vec<String>,
    owners: Vec<String>,
}

impl Members {
    fn of(org: &Org, ids: &[String]) -> Members {
        let mut members = Members::default();
        for id in ids {
            match org.member(id) {
                Member::Person(id) => members.people.push(id),
                Member::Suspended(email) => members.suspended.push(email),
                Member::Unknown(email) => members.unknown.push(email),
                Member::Foreign(email) => members.foreign.push(email),
                Member::Protected(email) => members.protected.push(email),
                Member::Owner(email) => members.owners.push(email),
                Member::Gone => {}
            }
        }
        members.people.sort_unstable();
        members.people.dedup();
        for list in [
            &mut members.suspended,
            &mut members.unknown,
            &mut members.foreign,
            &mut members.protected,
            &mut members.owners,
        ] {
            list.sort();
            list.dedup();
        }
        members
    }

    /// Takes in the members of the same usergroup in another workspace, whose people
    /// are these: the accounts outside the rule of both.
    fn absorb(&mut self, other: Members) {
        for (ours, theirs) in [
            (&mut self.foreign, other.foreign),
            (&mut self.protected, other.protected),
            (&mut self.owners, other.owners),
        ] {
            ours.extend(theirs);
            ours.sort();
            ours.dedup();
        }
    }

    /// Why a usergroup holding a primary owner the identity provider does not list as
    /// active, and no policy protects, is left unmanaged.
    fn unprotected_owner(&self) -> Option<String> {
        (!self.owners.is_empty()).then(|| {
            format!(
                "holds the primary owner ({}), whom the identity provider does not list as active and no policy protects: Slack refuses to deactivate them, so the plan would only remove them from the usergroup; add them to protected.users",
                shortlist(&self.owners)
            )
        })
    }
}

/// A usergroup to write: its handle, live fields, workspaces and rule.
pub(crate) struct UsergroupOut {
    pub handle: String,
    pub name: String,
    pub description: String,
    pub workspaces: Vec<String>,
    pub rule: Inferred,
    pub members: Vec<PersonId>,
    pub channels: Vec<String>,
    pub report: Imported,
}

/// A channel to write.
pub(crate) struct ChannelOut {
    pub name: String,
    pub workspace: String,
    pub private: bool,
    pub rule: Inferred,
    pub report: Imported,
}

/// Adopts what `live` and `directory` hold into mappings beside what `repository`
/// already manages, as `options` say.
pub fn adopt(
    repository: &Repository,
    directory: &Directory,
    live: &Live,
    options: &Options,
) -> Adoption {
    let org = Org::new(repository, directory, live, options);
    let mut scratch = Scratch::new(org.active.len(), directory.groups.len());
    let mut unmanaged = Vec::new();
    let mut usergroups = import_usergroups(&org, options, &mut scratch, &mut unmanaged);
    let channels = import_channels(&org, options, &mut scratch, &mut usergroups, &mut unmanaged);
    write::files(&org, options, usergroups, channels, unmanaged)
}

/// Every live usergroup `options` select and the repository does not manage yet, one
/// mapping per handle: the workspaces whose members agree with the first are imported
/// together, the others left unmanaged.
fn import_usergroups(
    org: &Org,
    options: &Options,
    scratch: &mut Scratch,
    unmanaged: &mut Vec<Unmanaged>,
) -> Vec<UsergroupOut> {
    let managed: BTreeSet<&str> = org
        .repository
        .mappings
        .iter()
        .flat_map(|f| f.value.usergroups.iter().map(|u| u.handle.as_str()))
        .collect();
    let mut by_handle: BTreeMap<&str, Vec<&crate::model::live::LiveUsergroup>> = BTreeMap::new();
    for group in &org.live.usergroups {
        if org.workspace_names.contains_key(&group.workspace)
            && options.wants_usergroup(&group.handle)
            && !managed.contains(group.handle.as_str())
        {
            by_handle.entry(&group.handle).or_default().push(group);
        }
    }
    let mut out = Vec::new();
    for (handle, mut groups) in by_handle {
        groups.sort_by(|a, b| {
            let name = |g: &crate::model::live::LiveUsergroup| &org.workspace_names[&g.workspace];
            name(a).cmp(name(b))
        });
        let mut leave = |group: &crate::model::live::LiveUsergroup, why: String| {
            unmanaged.push(Unmanaged {
                target: format!("@{handle}"),
                workspace: org.workspace_names[&group.workspace].clone(),
                why,
            });
        };
        let read: Vec<(&crate::model::live::LiveUsergroup, Members)> = groups
            .iter()
            .map(|&g| (g, Members::of(org, &g.members)))
            .collect();
        let (first, _) = read[0];
        let mut workspaces = Vec::new();
        let mut members: Option<Members> = None;
        for (group, theirs) in read {
            match &mut members {
                None => members = Some(theirs),
                Some(ours) if ours.people == theirs.people && group.disabled == first.disabled => {
                    // A bot, guest or unprotected owner in any workspace the mapping
                    // covers would be removed; a protected account is kept in each.
                    ours.absorb(theirs);
                }
                Some(_) => {
                    let first_name = &org.workspace_names[&first.workspace];
                    leave(
                        group,
                        format!(
                            "its members differ from @{handle}'s in {first_name}; one mapping holds one membership"
                        ),
                    );
                    continue;
                }
            }
            workspaces.push(group);
        }
        let members = members.expect("a handle has a usergroup");
        let why = if !crate::model::Handle::is_valid(handle) {
            Some("its handle is not one the config accepts".to_string())
        } else if first.disabled {
            Some("disabled in Slack".to_string())
        } else if !members.foreign.is_empty() {
            Some(format!(
                "holds {} bot or guest account(s) the identity provider does not know ({}), which the config cannot select",
                members.foreign.len(),
                shortlist(&members.foreign)
            ))
        } else if let Some(why) = members.unprotected_owner() {
            Some(why)
        } else if !members.people.iter().any(|&id| org.in_scope[id as usize]) {
            Some(
                "nobody in it keeps an account under users.scope, so the plan would disable it"
                    .to_string(),
            )
        } else {
            None
        };
        if let Some(why) = why {
            for group in workspaces {
                leave(group, why.clone());
            }
            continue;
        }
        let rule = infer::infer(&org.groups, scratch, &members.people, &[], &org.has_account);
        let names: Vec<String> = workspaces
            .iter()
            .map(|g| org.workspace_names[&g.workspace].clone())
            .collect();
        let report = imported(
            org,
            &format!("@{handle}"),
            names.clone(),
            &members,
            &rule,
            Vec::new(),
        );
        out.push(UsergroupOut {
            handle: handle.to_string(),
            name: first.name.clone(),
            description: first.description.clone(),
            workspaces: names,
            rule,
            members: members.people,
            channels: Vec::new(),
            report,
        });
    }
    out
}

/// The report of one import.
fn imported(
    org: &Org,
    target: &str,
    workspaces: Vec<String>,
    members: &Members,
    rule: &Inferred,
    usergroups: Vec<String>,
) -> Imported {
    Imported {
        target: target.to_string(),
        workspaces,
        file: String::new(),
        members: members.people.len(),
        explained: rule.explained,
        groups: rule
            .groups
            .iter()
            .map(|&g| org.groups.name(g).to_string())
            .collect(),
        exclude: rule
            .exclude
            .iter()
            .map(|&g| org.groups.name(g).to_string())
            .collect(),
        usergroups,
        added_by_hand: org.emails(&rule.users),
        left_out: org.emails(&rule.exclude_users),
        missed_deprovisions: members.suspended.clone(),
        unknown: members.unknown.clone(),
        protected: members.protected.clone(),
    }
}

/// Every live channel `options` select and the repository does not manage yet.
fn import_channels(
    org: &Org,
    options: &Options,
    scratch: &mut Scratch,
    usergroups: &mut [UsergroupOut],
    unmanaged: &mut Vec<Unmanaged>,
) -> Vec<ChannelOut> {
    let managed = org.repository.managed_channels();
    // Live channels by (team, name): where a usergroup's default channel would land.
    let mut live_channels: HashMap<(&str, &str), &crate::model::live::LiveChannel> = HashMap::new();
    for channel in &org.live.channels {
        if !channel.archived {
            live_channels.insert((&channel.workspace, &channel.name), channel);
        }
    }
    let team_of: BTreeMap<&str, &str> = org
        .workspace_names
        .iter()
        .map(|(team, name)| (name.as_str(), team.as_str()))
        .collect();
    // Per person: the usergroups (indices) they are in.
    let mut usergroups_of: Vec<Vec<u32>> = vec![Vec::new(); org.active.len()];
    for (u, group) in usergroups.iter().enumerate() {
        for &id in &group.members {
            usergroups_of[id as usize].push(u as u32);
        }
    }
    let mut counts = vec![0u32; usergroups.len()];
    let mut sorted: Vec<&crate::model::live::LiveChannel> = org
        .live
        .channels
        .iter()
        .filter(|c| org.workspace_names.contains_key(&c.workspace))
        .filter(|c| options.wants_channel(&c.name))
        .filter(|c| !managed.contains(&(c.workspace.clone(), c.name.clone())))
        .collect();
    sorted.sort_by(|a, b| {
        (&org.workspace_names[&a.workspace], &a.name)
            .cmp(&(&org.workspace_names[&b.workspace], &b.name))
    });
    let mut out = Vec::new();
    for channel in sorted {
        let workspace = org.workspace_names[&channel.workspace].clone();
        let leave = |why: &str| Unmanaged {
            target: format!("#{}", channel.name),
            workspace: workspace.clone(),
            why: why.to_string(),
        };
        if channel.archived {
            unmanaged.push(leave("archived"));
            continue;
        }
        if !crate::model::ChannelName::is_valid(&channel.name) {
            unmanaged.push(leave("its name is not one the config accepts"));
            continue;
        }
        let Some(ids) = &channel.members else {
            unmanaged.push(leave("its members cannot be read (the bot is not in it)"));
            continue;
        };
        let members = Members::of(org, ids);
        if members.people.is_empty() {
            unmanaged.push(leave("nobody in it is active in the identity provider"));
            continue;
        }
        // A primary owner no policy protects stays too: import leaves `remove_unlisted`
        // off, so no plan removes anyone from the channel.
        // The usergroups wholly inside the channel, in every workspace they cover.
        for &id in &members.people {
            for &u in &usergroups_of[id as usize] {
                counts[u as usize] += 1;
            }
        }
        let mut sources: Vec<u32> = Vec::new();
        for (u, group) in usergroups.iter().enumerate() {
            let elsewhere = group.workspaces.iter().filter(|w| **w != workspace);
            if counts[u] as usize == group.members.len()
                && group.members.len() >= 2
                && group.workspaces.contains(&workspace)
                && elsewhere.into_iter().all(|w| {
                    holds_all(
                        &live_channels,
                        team_of[w.as_str()],
                        &channel.name,
                        org,
                        &group.members,
                    )
                })
            {
                sources.push(u as u32);
            }
        }
        for &id in &members.people {
            for &u in &usergroups_of[id as usize] {
                counts[u as usize] = 0;
            }
        }
        // Largest first; keep those that explain at least two more people.
        sources.sort_by(|&a, &b| {
            let (a, b) = (&usergroups[a as usize], &usergroups[b as usize]);
            b.members
                .len()
                .cmp(&a.members.len())
                .then(a.handle.cmp(&b.handle))
        });
        let mut covered: BTreeSet<PersonId> = BTreeSet::new();
        let mut chosen = Vec::new();
        for u in sources {
            let group = &usergroups[u as usize];
            let new = group
                .members
                .iter()
                .filter(|id| !covered.contains(id))
                .count();
            if new >= 2 {
                covered.extend(group.members.iter().copied());
                chosen.push(u);
            }
        }
        // The usergroups and a rule for the rest, or a rule alone: whichever is shorter
        // to write (the usergroups on a tie: default channels are the usual way).
        let covered: Vec<PersonId> = covered.into_iter().collect();
        let mut rule = infer::infer(
            &org.groups,
            scratch,
            &members.people,
            &covered,
            &org.has_account,
        );
        if !chosen.is_empty() {
            let alone = infer::infer(&org.groups, scratch, &members.people, &[], &org.has_account);
            if alone.lines() < rule.lines() + chosen.len() {
                rule = alone;
                chosen.clear();
            }
        }
        let mut handles: Vec<String> = chosen
            .iter()
            .map(|&u| usergroups[u as usize].handle.clone())
            .collect();
        handles.sort();
        for &u in &chosen {
            usergroups[u as usize].channels.push(channel.name.clone());
            usergroups[u as usize].channels.sort();
            usergroups[u as usize].channels.dedup();
        }
        let report = imported(
            org,
            &format!("#{}", channel.name),
            vec![workspace.clone()],
            &members,
            &rule,
            handles.iter().map(|h| format!("@{h}")).collect(),
        );
        out.push(ChannelOut {
            name: channel.name.clone(),
            workspace,
            private: channel.private,
            rule,
            report,
        });
    }
    out
}

/// Whether the live channel `name` of `team`, if it exists, holds every one of `people`
/// (a channel that does not exist is left alone by a default channel).
fn holds_all(
    live_channels: &HashMap<(&str, &str), &crate::model::live::LiveChannel>,
    team: &str,
    name: &str,
    org: &Org,
    people: &[PersonId],
) -> bool {
    let Some(channel) = live_channels.get(&(team, name)) else {
        return true;
    };
    let Some(ids) = &channel.members else {
        return false;
    };
    let inside: BTreeSet<PersonId> = ids
        .iter()
        .filter_map(|id| match org.member(id) {
            Member::Person(id) => Some(id),
            _ => None,
        })
        .collect();
    people.iter().all(|id| inside.contains(id))
}

/// Up to five names, then how many more.
pub(crate) fn shortlist(names: &[String]) -> String {
    let mut text = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        text.push_str(&format!(" and {} more", names.len() - 5));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_as_a_shell_does() {
        assert!(glob_match("eng*", "eng-backend"));
        assert!(glob_match("*", ""));
        assert!(glob_match("e?g", "eng"));
        assert!(glob_match("*-oncall", "eng-oncall"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("eng", "eng-backend"));
        assert!(!glob_match("*-oncall", "eng-oncall-old"));
    }
}
