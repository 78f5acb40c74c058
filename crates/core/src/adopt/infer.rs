//! The rule behind a membership: the fewest IdP groups (minus excluded groups) that
//! reproduce a set of people, with the rest as explicit exceptions.
//!
//! The cost of a rule is the lines it takes to write: one per group, one per excluded
//! group, one per person listed (`users`) or excluded by name (`exclude_users`). A group
//! is added while it saves lines: the target's people it newly selects, minus the people
//! outside the target it newly selects, is more than one. Then a group is excluded while
//! it removes at least two wrongly selected people and selects nobody of the target
//! (an excluded group wins over `users`, so it may hold none of them). Both are greedy,
//! with ties broken by precision and then by name, so the result is deterministic.
//!
//! Work per target is linear in the group memberships of its people: the groups a
//! target's people are in are counted through a person -> groups index, and a group is
//! scanned only until it has proven worse than the best so far. Nothing is quadratic in
//! the org's size.

use crate::model::directory::{PersonId, Resolution};

/// The org's IdP groups as the inference needs them: each group's active members
/// (nested groups resolved), and per person the groups they are in.
pub struct Groups {
    names: Vec<String>,
    members: Vec<Vec<PersonId>>,
    of: Vec<Vec<u32>>,
}

impl Groups {
    /// From the resolved directory: `active` says, per person id, who the identity
    /// provider has active (only they are ever selected).
    pub fn new(resolution: &Resolution, names: &[String], active: &[bool]) -> Groups {
        let mut of: Vec<Vec<u32>> = vec![Vec::new(); active.len()];
        let mut members = Vec::with_capacity(names.len());
        for (g, name) in names.iter().enumerate() {
            let active_members: Vec<PersonId> = resolution
                .members(name)
                .unwrap_or_default()
                .iter()
                .copied()
                .filter(|&id| active[id as usize])
                .collect();
            for &id in &active_members {
                of[id as usize].push(g as u32);
            }
            members.push(active_members);
        }
        Groups {
            names: names.to_vec(),
            members,
            of,
        }
    }

    pub fn name(&self, group: u32) -> &str {
        &self.names[group as usize]
    }

    pub fn members(&self, group: u32) -> &[PersonId] {
        &self.members[group as usize]
    }
}

/// A rule found for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inferred {
    /// Groups, in the order they were chosen (the one explaining most first).
    pub groups: Vec<u32>,
    /// Excluded groups, by name.
    pub exclude: Vec<u32>,
    /// Target people the rule does not select: listed by name.
    pub users: Vec<PersonId>,
    /// People with an account the rule selects and the target lacks: excluded by name.
    pub exclude_users: Vec<PersonId>,
    /// Target people the groups (or what was already covered) explain.
    pub explained: usize,
}

impl Inferred {
    /// The lines it takes to write.
    pub fn lines(&self) -> usize {
        self.groups.len() + self.exclude.len() + self.users.len() + self.exclude_users.len()
    }
}

/// Per-person flags that clear in O(1): a mark is set when it equals the current stamp.
pub struct Marks {
    stamps: Vec<u32>,
    now: u32,
}

impl Marks {
    pub fn new(people: usize) -> Marks {
        Marks {
            stamps: vec![0; people],
            now: 1,
        }
    }

    pub fn clear(&mut self) {
        self.now += 1;
        if self.now == u32::MAX {
            self.stamps.fill(0);
            self.now = 1;
        }
    }

    pub fn mark(&mut self, id: PersonId) {
        self.stamps[id as usize] = self.now;
    }

    pub fn marked(&self, id: PersonId) -> bool {
        self.stamps[id as usize] == self.now
    }
}

/// Scratch space reused across targets, sized for the org.
pub struct Scratch {
    target: Marks,
    selected: Marks,
    excluded: Marks,
    counts: Vec<u32>,
    hits_target: Vec<bool>,
    touched: Vec<u32>,
}

impl Scratch {
    pub fn new(people: usize, groups: usize) -> Scratch {
        Scratch {
            target: Marks::new(people),
            selected: Marks::new(people),
            excluded: Marks::new(people),
            counts: vec![0; groups],
            hits_target: vec![false; groups],
            touched: Vec::new(),
        }
    }
}

/// Infers the rule for `target` (sorted, active people). `covered` (sorted) are target
/// people another source already selects (a channel's usergroups); `has_account[id]` says who
/// has an active Slack account: selecting someone without one is not an exception (the
/// plan creates their account and adds them, as it would any joiner).
pub fn infer(
    groups: &Groups,
    scratch: &mut Scratch,
    target: &[PersonId],
    covered: &[PersonId],
    has_account: &[bool],
) -> Inferred {
    scratch.target.clear();
    scratch.selected.clear();
    scratch.excluded.clear();
    for &id in target {
        scratch.target.mark(id);
    }
    for &id in covered {
        scratch.selected.mark(id);
    }
    let chosen = include(groups, scratch, target, has_account);
    let mut excluded = exclude(groups, scratch, target, &chosen, has_account);
    excluded.sort_by(|&a, &b| groups.name(a).cmp(groups.name(b)));
    let selected = |id: PersonId, s: &Scratch| s.selected.marked(id) && !s.excluded.marked(id);
    let explained = target.iter().filter(|&&id| selected(id, scratch)).count();
    if explained * 2 < target.len() {
        // No rule explains most of it: an explicit list.
        let users = target
            .iter()
            .copied()
            .filter(|id| covered.binary_search(id).is_err())
            .collect();
        return Inferred {
            groups: Vec::new(),
            exclude: Vec::new(),
            users,
            exclude_users: Vec::new(),
            explained: covered.len(),
        };
    }
    let users = target
        .iter()
        .copied()
        .filter(|&id| !selected(id, scratch))
        .collect();
    let mut exclude_users: Vec<PersonId> = chosen
        .iter()
        .flat_map(|&g| groups.members(g).iter().copied())
        .filter(|&id| {
            has_account[id as usize] && !scratch.target.marked(id) && !scratch.excluded.marked(id)
        })
        .collect();
    exclude_users.sort_unstable();
    exclude_users.dedup();
    Inferred {
        groups: chosen,
        exclude: excluded,
        users,
        exclude_users,
        explained,
    }
}

/// Counts, for every group holding one of `people` (filtered by `keep`), how many it
/// holds, into `scratch.counts`; the groups touched go to `scratch.touched`.
fn count_groups(
    groups: &Groups,
    scratch: &mut Scratch,
    people: &[PersonId],
    keep: impl Fn(PersonId, &Scratch) -> bool,
) {
    for &g in &scratch.touched {
        scratch.counts[g as usize] = 0;
    }
    scratch.touched.clear();
    for &id in people {
        if !keep(id, scratch) {
            continue;
        }
        for &g in &groups.of[id as usize] {
            if scratch.counts[g as usize] == 0 {
                scratch.touched.push(g);
            }
            scratch.counts[g as usize] += 1;
        }
    }
}

/// Whether candidate `a` beats `b`: more lines saved, then fewer wrong, then the name.
fn better(groups: &Groups, a: (i64, u32, u32), b: Option<(i64, u32, u32)>) -> bool {
    let Some(b) = b else { return true };
    (b.0, a.1, groups.name(b.2)) < (a.0, b.1, groups.name(a.2))
}

/// The greedy choice of groups to include; marks whom they select.
fn include(
    groups: &Groups,
    scratch: &mut Scratch,
    target: &[PersonId],
    has_account: &[bool],
) -> Vec<u32> {
    let mut chosen = Vec::new();
    loop {
        count_groups(groups, scratch, target, |id, s| !s.selected.marked(id));
        // (lines saved, wrongly selected, group)
        let mut best: Option<(i64, u32, u32)> = None;
        for &g in &scratch.touched {
            let new_right = scratch.counts[g as usize];
            let floor = best.map_or(0, |b| b.0);
            // Each wrong one costs a line: stop counting once this cannot win.
            let most_wrong = i64::from(new_right) - 1 - floor;
            if most_wrong < 0 {
                continue;
            }
            let mut wrong: i64 = 0;
            for &id in groups.members(g) {
                if has_account[id as usize]
                    && !scratch.target.marked(id)
                    && !scratch.selected.marked(id)
                {
                    wrong += 1;
                    if wrong > most_wrong {
                        break;
                    }
                }
            }
            if wrong > most_wrong {
                continue;
            }
            let saved = i64::from(new_right) - wrong - 1;
            let candidate = (saved, wrong as u32, g);
            if saved >= 1 && better(groups, candidate, best) {
                best = Some(candidate);
            }
        }
        let Some((_, _, g)) = best else { break };
        for &id in groups.members(g) {
            scratch.selected.mark(id);
        }
        chosen.push(g);
    }
    chosen
}

/// The greedy choice of groups to exclude from what `chosen` selects: each removes at
/// least two wrongly selected people with an account and holds nobody of the target.
fn exclude(
    groups: &Groups,
    scratch: &mut Scratch,
    target: &[PersonId],
    chosen: &[u32],
    has_account: &[bool],
) -> Vec<u32> {
    let mut wrong: Vec<PersonId> = chosen
        .iter()
        .flat_map(|&g| groups.members(g).iter().copied())
        .filter(|&id| has_account[id as usize] && !scratch.target.marked(id))
        .collect();
    if wrong.len() < 2 {
        return Vec::new();
    }
    wrong.sort_unstable();
    wrong.dedup();
    // Groups holding anyone of the target can never be excluded.
    count_groups(groups, scratch, target, |_, _| true);
    let holding: Vec<u32> = scratch.touched.clone();
    for &g in &holding {
        scratch.hits_target[g as usize] = true;
    }
    let mut excluded = Vec::new();
    loop {
        count_groups(groups, scratch, &wrong, |id, s| !s.excluded.marked(id));
        let mut best: Option<(i64, u32, u32)> = None;
        for &g in &scratch.touched {
            if scratch.hits_target[g as usize] {
                continue;
            }
            let saved = i64::from(scratch.counts[g as usize]) - 1;
            let candidate = (saved, 0, g);
            if saved >= 1 && better(groups, candidate, best) {
                best = Some(candidate);
            }
        }
        let Some((_, _, g)) = best else { break };
        for &id in groups.members(g) {
            scratch.excluded.mark(id);
        }
        excluded.push(g);
    }
    for &g in &holding {
        scratch.hits_target[g as usize] = false;
    }
    excluded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::directory::{Directory, Group, Person, PersonStatus};

    fn person(email: &str) -> Person {
        Person {
            email: email.into(),
            given_name: String::new(),
            family_name: String::new(),
            title: String::new(),
            department: String::new(),
            manager: None,
            status: PersonStatus::Active,
        }
    }

    fn group(name: &str, members: &[&str], nested: &[&str]) -> Group {
        Group {
            name: name.into(),
            description: String::new(),
            members: members.iter().map(|m| m.to_string()).collect(),
            groups: nested.iter().map(|m| m.to_string()).collect(),
        }
    }

    /// a..j: engineering = backend (a-d) + frontend (e-g); contractors = g, h; everyone.
    fn org() -> (Directory, Resolution) {
        let emails: Vec<String> = "abcdefghij".chars().map(|c| format!("{c}@x")).collect();
        let directory = Directory {
            source: "test".into(),
            people: emails.iter().map(|e| person(e)).collect(),
            groups: vec![
                group("backend", &["a@x", "b@x", "c@x", "d@x"], &[]),
                group("frontend", &["e@x", "f@x", "g@x"], &[]),
                group("engineering", &[], &["backend", "frontend"]),
                group("contractors", &["g@x", "h@x"], &[]),
                group(
                    "everyone",
                    &[
                        "a@x", "b@x", "c@x", "d@x", "e@x", "f@x", "g@x", "h@x", "i@x", "j@x",
                    ],
                    &[],
                ),
            ],
        }
        .normalise();
        let resolution = directory.resolve();
        (directory, resolution)
    }

    fn run(target: &[&str]) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
        let (directory, resolution) = org();
        let names: Vec<String> = directory.groups.iter().map(|g| g.name.clone()).collect();
        let active = vec![true; resolution.emails().len()];
        let groups = Groups::new(&resolution, &names, &active);
        let mut scratch = Scratch::new(active.len(), names.len());
        let mut ids: Vec<PersonId> = target.iter().map(|e| resolution.id(e).unwrap()).collect();
        ids.sort_unstable();
        let found = infer(&groups, &mut scratch, &ids, &[], &active);
        let names_of = |gs: &[u32]| gs.iter().map(|&g| groups.name(g).to_string()).collect();
        let emails = |ps: &[PersonId]| {
            ps.iter()
                .map(|&p| resolution.email(p).to_string())
                .collect()
        };
        (
            names_of(&found.groups),
            names_of(&found.exclude),
            emails(&found.users),
            emails(&found.exclude_users),
        )
    }

    #[test]
    fn a_parent_group_is_found_over_its_children() {
        let (groups, exclude, users, exclude_users) =
            run(&["a@x", "b@x", "c@x", "d@x", "e@x", "f@x", "g@x"]);
        assert_eq!(groups, ["engineering"]);
        assert!(exclude.is_empty() && users.is_empty() && exclude_users.is_empty());
    }

    #[test]
    fn a_group_less_a_group_is_found_with_its_exception() {
        // engineering minus contractors (g), plus i added by hand.
        let (groups, exclude, users, exclude_users) =
            run(&["a@x", "b@x", "c@x", "d@x", "e@x", "f@x", "i@x"]);
        assert_eq!(groups, ["engineering"]);
        assert_eq!(users, ["i@x"]);
        // Excluding contractors would save one line only (g) and cost one: g is named.
        assert!(exclude.is_empty());
        assert_eq!(exclude_users, ["g@x"]);
    }

    #[test]
    fn everyone_less_contractors_uses_an_excluded_group() {
        let (groups, exclude, users, exclude_users) =
            run(&["a@x", "b@x", "c@x", "d@x", "e@x", "f@x", "i@x", "j@x"]);
        assert_eq!(groups, ["everyone"]);
        assert_eq!(exclude, ["contractors"]);
        assert!(users.is_empty() && exclude_users.is_empty());
    }

    #[test]
    fn a_scattered_membership_is_an_explicit_list() {
        let (groups, _, users, _) = run(&["a@x", "e@x", "h@x"]);
        assert!(groups.is_empty());
        assert_eq!(users, ["a@x", "e@x", "h@x"]);
    }
}
