//! The ordered changes that take live Slack to the desired state, each with its reason.
//!
//! **Order** (the executor runs actions in this order, and it matters):
//! 1. accounts come into being first (creations, reactivations), then workspace
//!    assignments, because memberships need an active account in the workspace;
//! 2. usergroups and channels are created, updated and re-enabled;
//! 3. memberships are set (usergroup full lists, channel invites), then kicks;
//! 4. usergroups that would be empty are disabled (Slack cannot empty one);
//! 5. leavers are deactivated only after their memberships are removed, and their
//!    sessions are revoked after deactivation.
//!
//! **Ownership**: only usergroups and channels named in the config are touched; everything
//! else is listed as unmanaged. Guests and bots are never deactivated by this tool.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::action::{
    Action, Addition, Awaiting, Drift, FieldChange, Grant, Impact, NewProfile, Person, Plan,
    ProfileField, Removal, SignOut, SlackId, UsergroupField,
};
use super::desired::{Desired, RuleId};
use super::leaver::{self, Leaver};
use crate::config::types::{Provisioning, SlackPlan};
use crate::model::directory::{Directory, PersonId};
use crate::model::live::{InstalledApps, Live, LiveUser};

/// The tail of a [`Drift::NotSelected`] reason that later passes replace when they can
/// tell more.
const UNEXPLAINED: &str = " (added by hand in Slack, left the IdP group, or the mapping changed)";

/// Lookups over live Slack and the directory, built once per plan so every step is a
/// hash or array access rather than a scan (a scan per usergroup or channel would be
/// quadratic at 5,000 usergroups and 50,000 channels).
struct Index<'a> {
    desired: &'a Desired<'a>,
    directory: &'a Directory,
    live: &'a Live,
    /// Live user index by Slack user id.
    by_user_id: HashMap<&'a str, usize>,
    /// Live user index by username, built only if a manager is given that way.
    by_user_name: std::cell::OnceCell<HashMap<&'a str, usize>>,
    /// Per person id: their live account.
    account: Vec<Option<usize>>,
    /// Per live user: their person id, when the directory names their email.
    person_of: Vec<Option<PersonId>>,
    /// Per person id: whether their account is (or is about to be) active.
    usable: Vec<bool>,
}

impl<'a> Index<'a> {
    fn new(desired: &'a Desired<'a>, directory: &'a Directory, live: &'a Live) -> Index<'a> {
        let resolution = desired.resolution;
        let mut account = vec![None; resolution.emails().len()];
        let mut person_of = vec![None; live.users.len()];
        let mut by_user_id = HashMap::with_capacity(live.users.len());
        for (i, user) in live.users.iter().enumerate() {
            by_user_id.insert(user.id.as_str(), i);
            if let Some(id) = resolution.id(&user.email) {
                person_of[i] = Some(id);
                // Two accounts with one email: the active one counts, then the lowest id,
                // so the choice does not depend on the order Slack listed them in.
                let slot: &mut Option<usize> = &mut account[id as usize];
                let rank = |u: &'a LiveUser| (!u.active, u.id.as_str());
                if slot.is_none_or(|j| rank(user) < rank(&live.users[j])) {
                    *slot = Some(i);
                }
            }
        }
        Index {
            desired,
            directory,
            live,
            by_user_id,
            by_user_name: std::cell::OnceCell::new(),
            account,
            person_of,
            usable: vec![false; resolution.emails().len()],
        }
    }

    fn user(&self, id: PersonId) -> Option<&'a LiveUser> {
        self.account[id as usize].map(|i| &self.live.users[i])
    }

    /// The email of a live account's manager. SCIM gives the manager as a Slack user id,
    /// though Slack also accepts an email or a username when it is set.
    fn manager_email(&self, user: &LiveUser) -> Option<String> {
        let manager = user.manager.as_deref()?;
        if let Some(&i) = self.by_user_id.get(manager) {
            return Some(self.live.users[i].email.clone());
        }
        if manager.contains('@') {
            return Some(manager.to_lowercase());
        }
        let by_user_name = self.by_user_name.get_or_init(|| {
            let users = self.live.users.iter().enumerate();
            users.map(|(i, u)| (u.user_name.as_str(), i)).collect()
        });
        by_user_name
            .get(manager)
            .map(|&i| self.live.users[i].email.clone())
    }

    fn person(&self, id: PersonId) -> Person {
        Person {
            email: self.desired.email(id).to_string(),
            user_id: self.user(id).map(|u| u.id.clone()).into(),
        }
    }

    fn live_person(&self, i: usize) -> Person {
        let user = &self.live.users[i];
        Person {
            email: user.email.clone(),
            user_id: SlackId::Live(user.id.clone()),
        }
    }

    /// Live member ids to live user indices (ids Slack no longer knows are dropped).
    fn live_members(&self, ids: &[String]) -> Vec<usize> {
        ids.iter()
            .filter_map(|id| self.by_user_id.get(id.as_str()).copied())
            .collect()
    }

    /// Why a live account is not wanted somewhere: the strongest reason wins.
    fn drift(&self, i: usize) -> Drift {
        leaver::account_drift(self.desired, self.directory, self.person_of[i])
    }

    /// A removal of live user `i`, explained against the rule that no longer selects them
    /// (`None` for a deactivation, which is about `users.scope`).
    fn removal(&self, i: usize, rule: Option<RuleId>) -> Removal {
        let drift = self.drift(i);
        let why = match (drift, rule, self.person_of[i]) {
            // `drift` gives only `NotSelected` of these; later passes tell them apart.
            (Drift::NotSelected, Some(rule), Some(id)) => self.not_selected(rule, id),
            _ => leaver::deactivation_why(self.desired, drift),
        };
        Removal {
            person: self.live_person(i),
            drift,
            why,
        }
    }

    /// Why an active person in scope is not selected by a rule.
    fn not_selected(&self, rule: RuleId, id: PersonId) -> String {
        let resolution = self.desired.resolution;
        let selector = &self.desired.rule(rule).selector;
        let email = self.desired.email(id);
        if selector.exclude_users.iter().any(|e| e.as_str() == email) {
            return "excluded by email (exclude_users)".into();
        }
        for group in &selector.exclude {
            if let Some(chain) = resolution.chain(self.directory, group, id) {
                return format!("excluded by `{group}` ({})", chain.join(" > "));
            }
        }
        if selector.groups.is_empty() {
            format!("not listed by the rule{UNEXPLAINED}")
        } else {
            format!("in none of {}{UNEXPLAINED}", names(&selector.groups))
        }
    }

    fn grant(&self, rule: RuleId, id: PersonId) -> Grant {
        self.desired.grant(self.directory, rule, id)
    }

    fn scope_grant(&self, id: PersonId) -> Grant {
        self.desired.scope_grant(self.directory, id)
    }

    /// The profile a new account starts with, as the identity provider has it.
    fn new_profile(&self, id: PersonId) -> NewProfile {
        let resolution = self.desired.resolution;
        resolution
            .person(self.directory, id)
            .map_or_else(NewProfile::default, |p| NewProfile {
                given_name: p.given_name.clone(),
                family_name: p.family_name.clone(),
                title: p.title.clone(),
                department: p.department.clone(),
            })
    }

    fn protected(&self, email: &str) -> bool {
        self.desired.protected.contains(email)
    }
}

/// "`a`, `b`" for messages.
pub(crate) fn names(groups: &[String]) -> String {
    groups
        .iter()
        .map(|g| format!("`{g}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reusable membership mark over live users: `mark(i)` then `marked(i)`, cleared in O(1)
/// by moving to the next generation.
struct Marks {
    stamp: Vec<u32>,
    generation: u32,
}

impl Marks {
    fn new(len: usize) -> Marks {
        Marks {
            stamp: vec![0; len],
            generation: 0,
        }
    }

    fn clear(&mut self) {
        self.generation += 1;
    }

    fn mark(&mut self, i: usize) {
        self.stamp[i] = self.generation;
    }

    fn marked(&self, i: usize) -> bool {
        self.stamp[i] == self.generation
    }
}

/// The actions of each phase, concatenated in this order at the end.
#[derive(Default)]
struct Phases {
    creations: Vec<Action>,
    assignments: Vec<Action>,
    /// Channels are created before usergroups, so a new usergroup can name a new default
    /// channel.
    channel_structure: Vec<Action>,
    structure: Vec<Action>,
    memberships: Vec<Action>,
    kicks: Vec<Action>,
    disables: Vec<Action>,
    leavers: Vec<Action>,
    resets: Vec<Action>,
}

/// Just-in-time joiners without an account: the usergroups and channels they will join.
type Pending = BTreeMap<PersonId, (Vec<String>, Vec<String>)>;

/// Computes the plan. Pure and deterministic.
pub fn plan(desired: &Desired, directory: &Directory, live: &Live) -> Plan {
    let mut index = Index::new(desired, directory, live);
    let mut plan = Plan::default();
    let mut phases = Phases::default();
    let mut pending = plan_accounts(&mut index, &mut phases);
    plan_profiles(&index, &mut phases);
    plan_workspaces(&index, &mut phases);
    let mut marks = (Marks::new(live.users.len()), Marks::new(live.users.len()));
    plan.unmanaged_usergroups = plan_usergroups(&index, &mut pending, &mut marks, &mut phases);
    plan.unmanaged_channels = plan_channels(&index, &mut pending, &mut marks, &mut phases);
    plan.awaiting_first_login = pending
        .into_iter()
        .map(|(id, (mut usergroups, mut channels))| {
            usergroups.sort();
            channels.sort();
            Awaiting {
                email: desired.email(id).to_string(),
                grant: index.scope_grant(id),
                usergroups,
                channels,
            }
        })
        .collect();
    plan.blocked_by_protection = plan_leavers(&index, &mut phases);
    let Phases {
        creations,
        assignments,
        channel_structure,
        structure,
        memberships,
        kicks,
        disables,
        leavers,
        resets,
    } = phases;
    plan.actions = [
        creations,
        assignments,
        channel_structure,
        structure,
        memberships,
        kicks,
        disables,
        leavers,
        resets,
    ]
    .concat();
    explain_moves(&mut plan.actions);
    plan
}

/// Phase 1, accounts: creations and reactivations; marks who will have a usable
/// account. Returns the just-in-time joiners still waiting for their first login.
fn plan_accounts(index: &mut Index, phases: &mut Phases) -> Pending {
    let desired = index.desired;
    let jit = desired.provisioning == Provisioning::JustInTime;
    let mut pending = Pending::new();
    for &id in &desired.accounts {
        match index.user(id) {
            Some(user) if user.active => index.usable[id as usize] = true,
            Some(_) => {
                phases.creations.push(Action::ReactivateUser {
                    person: index.person(id),
                });
                index.usable[id as usize] = true;
            }
            None if jit => {
                pending.insert(id, (Vec::new(), Vec::new()));
            }
            None => {
                phases.creations.push(Action::CreateUser {
                    person: index.person(id),
                    grant: index.scope_grant(id),
                    profile: index.new_profile(id),
                });
                index.usable[id as usize] = true;
            }
        }
    }
    pending
}

/// Profiles follow the identity provider for the fields it holds.
fn plan_profiles(index: &Index, phases: &mut Phases) {
    let desired = index.desired;
    for &id in &desired.accounts {
        let Some(source) = desired.resolution.person(index.directory, id) else {
            continue;
        };
        let Some(user) = index.user(id) else {
            // A joiner this plan creates gets their manager once both accounts exist.
            if let Some(manager) = joiner_manager(index, id, source.manager.as_deref()) {
                phases.assignments.push(Action::UpdateProfile {
                    person: index.person(id),
                    fields: vec![manager],
                });
            }
            continue;
        };
        let pairs: [(ProfileField, &str, &str); 4] = [
            (
                ProfileField::GivenName,
                &user.given_name,
                &source.given_name,
            ),
            (
                ProfileField::FamilyName,
                &user.family_name,
                &source.family_name,
            ),
            (ProfileField::Title, &user.title, &source.title),
            (
                ProfileField::Department,
                &user.department,
                &source.department,
            ),
        ];
        let mut fields: Vec<FieldChange<ProfileField>> = pairs
            .into_iter()
            .filter(|(_, from, to)| from != to && !to.is_empty())
            .map(|(field, from, to)| FieldChange {
                field,
                from: from.to_string(),
                to: to.to_string(),
            })
            .collect();
        // The manager is set only once they have an account; until then it stays as is.
        if let Some(manager) = source.manager.as_deref() {
            let has_account = desired
                .resolution
                .id(manager)
                .is_some_and(|m| index.usable[m as usize]);
            let current = index.manager_email(user);
            if has_account && current.as_deref() != Some(manager) {
                fields.push(FieldChange {
                    field: ProfileField::Manager,
                    from: current.unwrap_or_default(),
                    to: manager.to_string(),
                });
            }
        }
        if !fields.is_empty() {
            phases.assignments.push(Action::UpdateProfile {
                person: index.person(id),
                fields,
            });
        }
    }
}

/// The manager of a joiner the plan creates, when the manager has (or gets) an account.
fn joiner_manager(
    index: &Index,
    id: PersonId,
    manager: Option<&str>,
) -> Option<FieldChange<ProfileField>> {
    let manager = manager?;
    let created = index.usable[id as usize];
    let has_account = index
        .desired
        .resolution
        .id(manager)
        .is_some_and(|m| index.usable[m as usize]);
    (created && has_account).then(|| FieldChange {
        field: ProfileField::Manager,
        from: String::new(),
        to: manager.to_string(),
    })
}

/// Workspace assignments that usergroups and channels need: Enterprise Grid only. On
/// Business+ there is one workspace, and SCIM creates every account in it.
fn plan_workspaces(index: &Index, phases: &mut Phases) {
    let desired = index.desired;
    if desired.slack_plan == SlackPlan::BusinessPlus {
        return;
    }
    for (id, needs) in desired.workspaces.iter().enumerate() {
        let id = id as PersonId;
        if needs.is_empty() || !index.usable[id as usize] {
            continue;
        }
        let have: &[String] = index.user(id).map_or(&[], |u| &u.workspaces);
        for workspace in desired
            .workspaces_of(id)
            .filter(|w| !have.iter().any(|h| h == w))
        {
            phases.assignments.push(Action::AssignWorkspace {
                person: index.person(id),
                workspace: workspace.to_string(),
            });
        }
    }
}

/// Phases 2-4, usergroups: structure, full member lists, disables. Returns the unmanaged ones.
fn plan_usergroups(
    index: &Index,
    pending: &mut Pending,
    (current_marks, wanted_marks): &mut (Marks, Marks),
    phases: &mut Phases,
) -> Vec<(String, String)> {
    let (desired, live) = (index.desired, index.live);
    let live_groups: HashMap<(&str, &str), usize> = live
        .usergroups
        .iter()
        .enumerate()
        .map(|(i, g)| ((g.workspace.as_str(), g.handle.as_str()), i))
        .collect();
    let mut managed: HashSet<(&str, &str)> = HashSet::new();
    for group in &desired.usergroups {
        managed.insert((group.workspace.as_str(), group.handle.as_str()));
        let live_group = live_groups
            .get(&(group.workspace.as_str(), group.handle.as_str()))
            .map(|&i| &live.usergroups[i]);
        let members: Vec<PersonId> = group
            .members
            .iter()
            .copied()
            .filter(|&id| index.usable[id as usize])
            .collect();
        usergroup_structure(index, group, live_group, !members.is_empty(), phases);
        let current = live_group.map_or_else(Vec::new, |g| index.live_members(&g.members));
        current_marks.clear();
        for &i in &current {
            current_marks.mark(i);
        }
        wanted_marks.clear();
        for &id in &group.members {
            if let Some(i) = index.account[id as usize] {
                wanted_marks.mark(i);
            } else if let Some((usergroups, _)) = pending.get_mut(&id) {
                usergroups.push(format!("{}/@{}", group.workspace, group.handle));
            }
        }
        if members.is_empty() {
            if let Some(live_group) = live_group.filter(|g| !g.disabled) {
                phases.disables.push(Action::DisableUsergroup {
                    workspace: group.workspace.clone(),
                    usergroup_id: live_group.id.clone(),
                    handle: group.handle.clone(),
                });
            }
            continue;
        }
        let marks = (&*current_marks, &*wanted_marks);
        if let Some(action) = usergroup_members(index, group, live_group, &members, &current, marks)
        {
            phases.memberships.push(action);
        }
    }
    let mut unmanaged: Vec<(String, String)> = live
        .usergroups
        .iter()
        .filter(|g| !managed.contains(&(g.workspace.as_str(), g.handle.as_str())))
        .map(|g| (g.workspace.clone(), g.handle.clone()))
        .collect();
    unmanaged.sort();
    unmanaged
}

/// A usergroup's full member list when it gains or loses anyone: `members` are the
/// usable people the rule selects, `current` the live members (marked in `current_marks`),
/// the selected people's accounts marked in `wanted_marks`. Protected people already in
/// the group stay in it.
fn usergroup_members(
    index: &Index,
    group: &crate::plan::desired::DesiredUsergroup,
    live_group: Option<&crate::model::live::LiveUsergroup>,
    members: &[PersonId],
    current: &[usize],
    (current_marks, wanted_marks): (&Marks, &Marks),
) -> Option<Action> {
    let live = index.live;
    let adds: Vec<Addition> = members
        .iter()
        .filter(|&&id| index.account[id as usize].is_none_or(|i| !current_marks.marked(i)))
        .map(|&id| Addition {
            person: index.person(id),
            grants: vec![index.grant(group.rule, id)],
        })
        .collect();
    let leaving = |i: &usize| !wanted_marks.marked(*i);
    let kept_protected = current
        .iter()
        .copied()
        .filter(leaving)
        .filter(|&i| index.protected(&live.users[i].email) && live.users[i].active);
    let mut removes: Vec<Removal> = current
        .iter()
        .copied()
        .filter(leaving)
        .filter(|&i| !index.protected(&live.users[i].email))
        .map(|i| index.removal(i, Some(group.rule)))
        .collect();
    removes.sort();
    if adds.is_empty() && removes.is_empty() {
        return None;
    }
    let mut full: Vec<Person> = members.iter().map(|&id| index.person(id)).collect();
    full.extend(kept_protected.map(|i| index.live_person(i)));
    full.sort();
    full.dedup();
    Some(Action::SetUsergroupMembers {
        workspace: group.workspace.clone(),
        usergroup_id: live_group.map(|g| g.id.clone()).into(),
        handle: group.handle.clone(),
        members: full,
        adds,
        removes,
        rule: index.desired.rule(group.rule).at.clone(),
    })
}

/// A usergroup's creation, field updates and re-enabling.
fn usergroup_structure(
    index: &Index,
    group: &crate::plan::desired::DesiredUsergroup,
    live_group: Option<&crate::model::live::LiveUsergroup>,
    has_members: bool,
    phases: &mut Phases,
) {
    let rule = index.desired.rule(group.rule).at.clone();
    let Some(live_group) = live_group else {
        phases.structure.push(Action::CreateUsergroup {
            workspace: group.workspace.clone(),
            handle: group.handle.clone(),
            name: group.name.clone(),
            description: group.description.clone(),
            channels: group.channels.clone(),
            rule,
        });
        return;
    };
    let mut fields = Vec::new();
    for (field, from, to) in [
        (UsergroupField::Name, &live_group.name, &group.name),
        (
            UsergroupField::Description,
            &live_group.description,
            &group.description,
        ),
    ] {
        if from != to {
            fields.push(FieldChange {
                field,
                from: from.clone(),
                to: to.clone(),
            });
        }
    }
    if !fields.is_empty() {
        phases.structure.push(Action::UpdateUsergroup {
            workspace: group.workspace.clone(),
            usergroup_id: live_group.id.clone(),
            handle: group.handle.clone(),
            fields,
            rule,
        });
    }
    if live_group.disabled && has_members {
        phases.structure.push(Action::EnableUsergroup {
            workspace: group.workspace.clone(),
            usergroup_id: live_group.id.clone(),
            handle: group.handle.clone(),
        });
    }
}

/// Channels: creations, invites in batches, kicks where `remove_unlisted`. Returns the
/// unmanaged ones.
fn plan_channels(
    index: &Index,
    pending: &mut Pending,
    (current_marks, wanted_marks): &mut (Marks, Marks),
    phases: &mut Phases,
) -> Vec<(String, String)> {
    let (desired, live) = (index.desired, index.live);
    let live_channels: HashMap<(&str, &str), usize> = live
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.workspace.as_str(), c.name.as_str()), i))
        .collect();
    let mut managed: HashSet<(&str, &str)> = HashSet::new();
    for channel in &desired.channels {
        managed.insert((channel.workspace.as_str(), channel.name.as_str()));
        let live_channel = live_channels
            .get(&(channel.workspace.as_str(), channel.name.as_str()))
            .map(|&i| &live.channels[i]);
        if live_channel.is_none() {
            if channel.rule.is_none() {
                // A default channel the config does not declare must already exist; the
                // executor reports it rather than inventing its settings.
                continue;
            }
            phases.channel_structure.push(Action::CreateChannel {
                workspace: channel.workspace.clone(),
                name: channel.name.clone(),
                private: channel.private,
                rule: channel.rule.map(|r| desired.rule(r).at.clone()),
            });
        }
        let current = live_channel
            .and_then(|c| c.members.as_deref())
            .map_or_else(Vec::new, |m| index.live_members(m));
        current_marks.clear();
        for &i in &current {
            current_marks.mark(i);
        }
        if !pending.is_empty() {
            for id in channel.members.keys() {
                if let Some((_, channels)) = pending.get_mut(id) {
                    channels.push(format!("{}/#{}", channel.workspace, channel.name));
                }
            }
        }
        channel_invites(index, channel, live_channel, current_marks, phases);
        if let (true, Some(live_channel)) = (channel.remove_unlisted, live_channel) {
            channel_kicks(index, channel, live_channel, &current, wanted_marks, phases);
        }
    }
    let mut unmanaged: Vec<(String, String)> = live
        .channels
        .iter()
        .filter(|c| !managed.contains(&(c.workspace.as_str(), c.name.as_str())))
        .map(|c| (c.workspace.clone(), c.name.clone()))
        .collect();
    unmanaged.sort();
    unmanaged
}

/// Invites, in batches of 100 (`conversations.invite`'s limit), for the usable people a
/// channel should hold and does not (its live members marked in `current_marks`).
fn channel_invites(
    index: &Index,
    channel: &crate::plan::desired::DesiredChannel,
    live_channel: Option<&crate::model::live::LiveChannel>,
    current_marks: &Marks,
    phases: &mut Phases,
) {
    let missing: Vec<Addition> = channel
        .members
        .iter()
        .filter(|&(&id, _)| {
            index.usable[id as usize]
                && index.account[id as usize].is_none_or(|i| !current_marks.marked(i))
        })
        .map(|(&id, rules)| Addition {
            person: index.person(id),
            grants: rules.iter().map(|&r| index.grant(r, id)).collect(),
        })
        .collect();
    for batch in missing.chunks(100) {
        phases.memberships.push(Action::InviteToChannel {
            workspace: channel.workspace.clone(),
            channel: channel.name.clone(),
            channel_id: live_channel.map(|c| c.id.clone()).into(),
            people: batch.to_vec(),
        });
    }
}

/// Kicks from a `remove_unlisted` channel: its `current` live members nobody selects,
/// except protected people and bots.
fn channel_kicks(
    index: &Index,
    channel: &crate::plan::desired::DesiredChannel,
    live_channel: &crate::model::live::LiveChannel,
    current: &[usize],
    wanted_marks: &mut Marks,
    phases: &mut Phases,
) {
    wanted_marks.clear();
    for &id in channel.members.keys() {
        if let Some(i) = index.account[id as usize] {
            wanted_marks.mark(i);
        }
    }
    let mut removals: Vec<Removal> = current
        .iter()
        .copied()
        .filter(|&i| {
            let user = &index.live.users[i];
            !wanted_marks.marked(i) && !index.protected(&user.email) && !user.bot
        })
        .map(|i| index.removal(i, channel.rule))
        .collect();
    removals.sort();
    for removal in removals {
        phases.kicks.push(Action::KickFromChannel {
            workspace: channel.workspace.clone(),
            channel: channel.name.clone(),
            channel_id: live_channel.id.clone(),
            removal,
        });
    }
}

/// Phase 5, leavers: [`leaver::leaver`] asked of every live account; leavers are
/// deactivated, then their sessions revoked. Returns the blocked ones (protected, or the
/// primary owner), which are only reported.
fn plan_leavers(index: &Index, phases: &mut Phases) -> Vec<Removal> {
    let (desired, live) = (index.desired, index.live);
    let mut blocked = Vec::new();
    let mut leaving: Vec<(usize, Removal)> = Vec::new();
    for (i, user) in live.users.iter().enumerate() {
        match leaver::leaver(desired, index.directory, index.person_of[i], user) {
            Leaver::Stays | Leaver::NotOurs => {}
            Leaver::Blocked(removal) => blocked.push(removal),
            Leaver::Leaves(removal) => leaving.push((i, removal)),
        }
    }
    blocked.sort();
    let accounts: Vec<usize> = leaving.iter().map(|(i, _)| *i).collect();
    let impacts = impacts(live, &accounts);
    let mut removals: Vec<Removal> = leaving.into_iter().map(|(_, removal)| removal).collect();
    removals.sort();
    for removal in removals {
        let impact = removal
            .person
            .user_id
            .live()
            .and_then(|id| impacts.get(id))
            .cloned()
            .unwrap_or_default();
        let by = SignOut::on(desired.slack_plan);
        let [deactivate, reset] = leaver::leaver_actions(removal, impact, by);
        phases.resets.push(reset);
        phases.leavers.push(deactivate);
    }
    blocked
}

/// The removals of an action, to explain them further.
fn removals_mut(action: &mut Action) -> &mut [Removal] {
    match action {
        Action::SetUsergroupMembers { removes, .. } => removes,
        Action::KickFromChannel { removal, .. } => std::slice::from_mut(removal),
        _ => &mut [],
    }
}

/// A person the plan removes somewhere for no reason it can name, and adds to another
/// managed usergroup, is a mover: the identity provider moved them.
fn explain_moves(actions: &mut [Action]) {
    let mut joins: HashMap<String, String> = HashMap::new();
    for action in actions.iter() {
        if let Action::SetUsergroupMembers {
            workspace,
            handle,
            adds,
            ..
        } = action
        {
            for add in adds {
                joins
                    .entry(add.person.email.clone())
                    .or_insert_with(|| format!("@{handle} in {workspace}"));
            }
        }
    }
    if joins.is_empty() {
        return;
    }
    for action in actions {
        for removal in removals_mut(action) {
            let Some(to) = joins.get(&removal.person.email) else {
                continue;
            };
            if let Some(core) = removal.why.strip_suffix(UNEXPLAINED) {
                removal.why = format!("{core}; joins {to}");
                removal.drift = Drift::Moved;
            }
        }
    }
}

/// Explains the removals [`plan`] could not, against the mapping digests of the last good
/// plan ([`Desired::mapping_digests`]): where a usergroup's or channel's mapping changed
/// since, the change caused them; where it did not, the person was added by hand in Slack
/// (or taken out of the IdP group since). Without digests nothing changes.
///
/// [`Desired::mapping_digests`]: super::desired::Desired::mapping_digests
pub fn explain_by_mapping(
    plan: &mut Plan,
    now: &BTreeMap<String, String>,
    before: &BTreeMap<String, String>,
) {
    if before.is_empty() {
        return;
    }
    for action in &mut plan.actions {
        let key = match action {
            Action::SetUsergroupMembers {
                workspace, handle, ..
            } => format!("{workspace}/@{handle}"),
            Action::KickFromChannel {
                workspace, channel, ..
            } => format!("{workspace}/#{channel}"),
            _ => continue,
        };
        let changed = now.get(&key) != before.get(&key);
        for removal in removals_mut(action) {
            let Some(core) = removal.why.strip_suffix(UNEXPLAINED) else {
                continue;
            };
            (removal.drift, removal.why) = if changed {
                (
                    Drift::MappingChanged,
                    format!("{core} under the new mapping"),
                )
            } else {
                (
                    Drift::ManualAdd,
                    format!("{core}; the mapping is unchanged since the last good plan"),
                )
            };
        }
    }
}

/// The usergroups and channels each leaver is in today, by Slack user id.
fn impacts<'a>(live: &'a Live, leaving: &[usize]) -> BTreeMap<&'a str, Impact> {
    let mut impacts: BTreeMap<&str, Impact> = leaving
        .iter()
        .map(|&i| (live.users[i].id.as_str(), Impact::default()))
        .collect();
    if impacts.is_empty() {
        return impacts;
    }
    for group in &live.usergroups {
        for member in &group.members {
            if let Some(impact) = impacts.get_mut(member.as_str()) {
                impact
                    .usergroups
                    .push(format!("{}/@{}", group.workspace, group.handle));
            }
        }
    }
    for channel in &live.channels {
        for member in channel.members.iter().flatten() {
            if let Some(impact) = impacts.get_mut(member.as_str()) {
                impact
                    .channels
                    .push(format!("{}/#{}", channel.workspace, channel.name));
            }
        }
    }
    for (id, impact) in impacts.iter_mut() {
        impact.usergroups.sort();
        impact.channels.sort();
        impact.apps = installed_by(&live.apps, id);
    }
    impacts
}

/// The apps `user` installed, in words, sorted; `None` when Slack could not say.
fn installed_by(apps: &InstalledApps, user: &str) -> Option<Vec<String>> {
    let InstalledApps::Known(apps) = apps else {
        return None;
    };
    let mut theirs: Vec<String> = apps
        .iter()
        .filter(|app| app.installed_by == user)
        .map(|app| format!("{} ({}) in {}", app.name, app.id, app.workspace))
        .collect();
    theirs.sort();
    theirs.dedup();
    Some(theirs)
}
