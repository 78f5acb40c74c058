//! The identity provider's view: people and groups, with nested groups resolved.
//!
//! Every identity adapter produces a [`Directory`]; [`Directory::resolve`] computes each
//! group's transitive members once. Nested groups may form cycles in real IdPs; a cycle
//! is reported (as a diagnostic) and its groups share their members, so a cycle never
//! loops and never loses anyone.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::diagnostic::{Code, Diagnostic};

/// Whether a person may hold accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonStatus {
    Active,
    /// Suspended, deprovisioned or disabled in the IdP: a leaver.
    Suspended,
}

/// One person in the IdP.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Lowercase email, the join key with Slack.
    pub email: String,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub department: String,
    /// The manager's email.
    #[serde(default)]
    pub manager: Option<String>,
    pub status: PersonStatus,
}

/// One IdP group: direct members (emails) and nested groups (names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A snapshot of the IdP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Where it was read from (a path or a URL), for messages.
    pub source: String,
    pub people: Vec<Person>,
    pub groups: Vec<Group>,
}

/// A person's position in [`Resolution::emails`]: every email the directory names, in
/// sorted order, so sets of ids sort the same way as sets of emails.
pub type PersonId = u32;

/// Transitive group membership, computed once.
///
/// People are interned: each email the directory names (people and group members) gets a
/// [`PersonId`], and each group's members are a sorted slice of ids. Groups in one cycle,
/// and groups whose members are the same component, share one set. This keeps resolving a
/// 200,000-person directory with 20,000 nested groups to a few tens of milliseconds and
/// memory proportional to the memberships, not to members times nesting depth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    emails: Vec<String>,
    /// Per id: the index in `Directory::people`, when the email is a person's.
    people: Vec<Option<u32>>,
    /// Per id: the groups that list the person directly (indices into `Directory::groups`).
    direct: Vec<Vec<u32>>,
    /// Group name -> index into `Directory::groups`.
    group_index: BTreeMap<String, u32>,
    /// Per group: the groups that nest it.
    parents: Vec<Vec<u32>>,
    /// Per group: the index of its member set in `sets`.
    set_of: Vec<u32>,
    sets: Vec<Vec<PersonId>>,
    /// Cycle reports and nested names that are not groups.
    pub diagnostics: Vec<Diagnostic>,
}

impl Resolution {
    /// The transitive members of a group, sorted by email; `None` for an unknown group.
    pub fn members(&self, group: &str) -> Option<&[PersonId]> {
        let &g = self.group_index.get(group)?;
        Some(&self.sets[self.set_of[g as usize] as usize])
    }

    /// The transitive members of a group as emails (empty for an unknown group).
    pub fn member_emails(&self, group: &str) -> BTreeSet<&str> {
        self.members(group)
            .unwrap_or_default()
            .iter()
            .map(|&id| self.email(id))
            .collect()
    }

    /// Every email the directory names, sorted; ids index it.
    pub fn emails(&self) -> &[String] {
        &self.emails
    }

    pub fn email(&self, id: PersonId) -> &str {
        &self.emails[id as usize]
    }

    /// The id of an email (lowercase), if the directory names it.
    pub fn id(&self, email: &str) -> Option<PersonId> {
        self.emails
            .binary_search_by(|e| e.as_str().cmp(email))
            .ok()
            .map(|i| i as PersonId)
    }

    /// The person behind an id, when the directory lists them (not only as a group member).
    pub fn person<'d>(&self, directory: &'d Directory, id: PersonId) -> Option<&'d Person> {
        self.people[id as usize].map(|i| &directory.people[i as usize])
    }

    /// How `id` comes to be a member of `group`: the chain of group names from `group`
    /// down to a group that lists the person directly (`["engineering", "platform",
    /// "sre"]`), shortest first found. `None` when the person is not a member.
    pub fn chain(&self, directory: &Directory, group: &str, id: PersonId) -> Option<Vec<String>> {
        let &target = self.group_index.get(group)?;
        // Breadth-first upwards from the groups that list the person, through the groups
        // that nest them, until `group` is reached; `from` remembers the way back down.
        let mut from: BTreeMap<u32, Option<u32>> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::new();
        for &g in &self.direct[id as usize] {
            from.entry(g).or_insert(None);
            queue.push_back(g);
        }
        while let Some(g) = queue.pop_front() {
            if g == target {
                let mut chain = vec![directory.groups[g as usize].name.clone()];
                let mut at = g;
                while let Some(Some(child)) = from.get(&at) {
                    chain.push(directory.groups[*child as usize].name.clone());
                    at = *child;
                }
                return Some(chain);
            }
            for &parent in &self.parents[g as usize] {
                if let std::collections::btree_map::Entry::Vacant(slot) = from.entry(parent) {
                    slot.insert(Some(g));
                    queue.push_back(parent);
                }
            }
        }
        None
    }
}

impl Directory {
    /// Sorts people and groups and lowercases emails, so equal directories compare and
    /// serialise equal whatever order the IdP returned them in.
    pub fn normalise(mut self) -> Directory {
        for person in &mut self.people {
            person.email = person.email.to_lowercase();
            person.manager = person.manager.take().map(|m| m.to_lowercase());
        }
        for group in &mut self.groups {
            for member in &mut group.members {
                *member = member.to_lowercase();
            }
            group.members.sort();
            group.members.dedup();
            group.groups.sort();
            group.groups.dedup();
        }
        self.people.sort();
        self.people.dedup_by(|a, b| a.email == b.email);
        self.groups.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }

    /// Group names, for checking the config's references.
    pub fn group_names(&self) -> BTreeSet<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    /// Resolves nested groups with Tarjan's strongly connected components, iteratively
    /// (no recursion, so deep nesting cannot overflow the stack). Components come out
    /// children first, so each one's members are its own plus its children's.
    pub fn resolve(&self) -> Resolution {
        let all = self.interned_emails();
        let id_of = |email: &str| all.binary_search(&email).map(|i| i as PersonId).ok();
        let mut people = vec![None; all.len()];
        for (i, person) in self.people.iter().enumerate() {
            if let Some(id) = id_of(&person.email) {
                people[id as usize].get_or_insert(i as u32);
            }
        }
        let group_index: BTreeMap<String, u32> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), i as u32))
            .collect();
        let mut direct: Vec<Vec<u32>> = vec![Vec::new(); all.len()];
        let own: Vec<Vec<PersonId>> = self
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let mut ids: Vec<PersonId> =
                    group.members.iter().filter_map(|m| id_of(m)).collect();
                ids.sort_unstable();
                ids.dedup();
                for &id in &ids {
                    direct[id as usize].push(g as u32);
                }
                ids
            })
            .collect();
        let mut diagnostics = Vec::new();
        let (edges, parents) = self.nesting(&group_index, &mut diagnostics);
        let (set_of, sets) = self.component_sets(&edges, &own, &mut diagnostics);
        Resolution {
            emails: all.into_iter().map(str::to_string).collect(),
            people,
            direct,
            group_index,
            parents,
            set_of,
            sets,
            diagnostics,
        }
    }

    /// Every email, of people and of group members: sorted and unique, so a person's id
    /// is their index.
    fn interned_emails(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .people
            .iter()
            .map(|p| p.email.as_str())
            .chain(
                self.groups
                    .iter()
                    .flat_map(|g| g.members.iter().map(String::as_str)),
            )
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The nesting graph: per group the indexes of the groups it nests, and per group
    /// those that nest it. A nested name that is not a group is an error.
    fn nesting(
        &self,
        group_index: &BTreeMap<String, u32>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> (Vec<Vec<usize>>, Vec<Vec<u32>>) {
        let mut parents: Vec<Vec<u32>> = vec![Vec::new(); self.groups.len()];
        let mut edges = Vec::with_capacity(self.groups.len());
        for (g, group) in self.groups.iter().enumerate() {
            let mut children = Vec::new();
            for child in &group.groups {
                let Some(&i) = group_index.get(child.as_str()) else {
                    diagnostics.push(Diagnostic::error(
                        Code::IdentityUnknownNestedGroup,
                        &self.source,
                        None,
                        format!(
                            "IdP group `{}` nests `{child}`, which is not a group in the directory",
                            group.name
                        ),
                    ));
                    continue;
                };
                parents[i as usize].push(g as u32);
                children.push(i as usize);
            }
            edges.push(children);
        }
        (edges, parents)
    }

    /// The members of each strongly connected component (its groups' own members and
    /// its children's), with each group's component. A cycle is a warning.
    fn component_sets(
        &self,
        edges: &[Vec<usize>],
        own: &[Vec<PersonId>],
        diagnostics: &mut Vec<Diagnostic>,
    ) -> (Vec<u32>, Vec<Vec<PersonId>>) {
        let components = strongly_connected(edges);
        let mut set_of = vec![0u32; self.groups.len()];
        for (c, component) in components.iter().enumerate() {
            for &g in component {
                set_of[g] = c as u32;
            }
        }
        let mut sets: Vec<Vec<PersonId>> = Vec::with_capacity(components.len());
        for (c, component) in components.iter().enumerate() {
            let mut members: Vec<PersonId> = Vec::new();
            let mut parts = 0;
            for &g in component {
                members.extend_from_slice(&own[g]);
                parts += usize::from(!own[g].is_empty());
                for &child in &edges[g] {
                    let child_set = set_of[child] as usize;
                    if child_set != c {
                        // Children finish first, so their members are known.
                        members.extend_from_slice(&sets[child_set]);
                        parts += 1;
                    }
                }
            }
            if parts > 1 {
                members.sort_unstable();
                members.dedup();
            }
            if component.len() > 1 || edges[component[0]].contains(&component[0]) {
                diagnostics.push(self.cycle_warning(component));
            }
            sets.push(members);
        }
        (set_of, sets)
    }

    /// The warning for groups that nest each other.
    fn cycle_warning(&self, component: &[usize]) -> Diagnostic {
        let mut names: Vec<&str> = component
            .iter()
            .map(|&g| self.groups[g].name.as_str())
            .collect();
        names.sort();
        let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        Diagnostic::error(
            Code::IdentityGroupCycle,
            &self.source,
            None,
            format!("IdP groups {} nest each other in a cycle", names.join(", ")),
        )
        .with_help("each group in the cycle is taken to contain the members of all of them; fix the nesting in the identity provider")
        .warning()
    }
}

/// Tarjan's algorithm without recursion; components in reverse topological order.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let n = edges.len();
    let mut order = vec![UNVISITED; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut counter = 0;
    for root in 0..n {
        if order[root] != UNVISITED {
            continue;
        }
        // (node, next edge to look at)
        let mut work = vec![(root, 0usize)];
        order[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (node, ref mut next)) = work.last_mut() {
            if let Some(&child) = edges[node].get(*next) {
                *next += 1;
                if order[child] == UNVISITED {
                    order[child] = counter;
                    low[child] = counter;
                    counter += 1;
                    stack.push(child);
                    on_stack[child] = true;
                    work.push((child, 0));
                } else if on_stack[child] {
                    low[node] = low[node].min(order[child]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == order[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, members: &[&str], groups: &[&str]) -> Group {
        Group {
            name: name.into(),
            description: String::new(),
            members: members.iter().map(|m| m.to_string()).collect(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn members<'r>(resolution: &'r Resolution, name: &str) -> Vec<&'r str> {
        resolution.member_emails(name).into_iter().collect()
    }

    #[test]
    fn nested_groups_resolve_transitively() {
        let directory = Directory {
            source: "test".into(),
            people: Vec::new(),
            groups: vec![
                group("everyone", &[], &["employees", "contractors"]),
                group("employees", &["ceo@x"], &["engineering"]),
                group("engineering", &["ada@x"], &["sre"]),
                group("sre", &["sam@x"], &[]),
                group("contractors", &["cat@x"], &[]),
            ],
        };
        let resolution = directory.resolve();
        assert!(resolution.diagnostics.is_empty());
        assert_eq!(
            members(&resolution, "everyone"),
            ["ada@x", "cat@x", "ceo@x", "sam@x"]
        );
        assert_eq!(members(&resolution, "engineering"), ["ada@x", "sam@x"]);
        let sam = resolution.id("sam@x").unwrap();
        assert_eq!(
            resolution.chain(&directory, "everyone", sam).unwrap(),
            ["everyone", "employees", "engineering", "sre"]
        );
        assert_eq!(resolution.chain(&directory, "sre", sam).unwrap(), ["sre"]);
        assert_eq!(resolution.chain(&directory, "contractors", sam), None);
    }

    #[test]
    fn cycles_are_reported_and_share_members() {
        let directory = Directory {
            source: "identity/directory.yaml".into(),
            people: Vec::new(),
            groups: vec![
                group("a", &["a@x"], &["b"]),
                group("b", &["b@x"], &["c"]),
                group("c", &["c@x"], &["a", "d"]),
                group("d", &["d@x"], &["missing"]),
            ],
        };
        let resolution = directory.resolve();
        assert_eq!(members(&resolution, "a"), ["a@x", "b@x", "c@x", "d@x"]);
        assert_eq!(members(&resolution, "c"), members(&resolution, "a"));
        assert_eq!(members(&resolution, "d"), ["d@x"]);
        let codes: Vec<&str> = resolution
            .diagnostics
            .iter()
            .map(|d| d.code.as_str())
            .collect();
        assert_eq!(
            codes,
            ["identity-unknown-nested-group", "identity-group-cycle"]
        );
        assert!(resolution.diagnostics[1].message.contains("`a`, `b`, `c`"));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let groups: Vec<Group> = (0..100_000)
            .map(|i| Group {
                name: format!("g{i}"),
                description: String::new(),
                members: Vec::new(),
                groups: if i + 1 < 100_000 {
                    vec![format!("g{}", i + 1)]
                } else {
                    Vec::new()
                },
            })
            .collect();
        let mut directory = Directory {
            source: "deep".into(),
            people: Vec::new(),
            groups,
        };
        directory.groups[99_999].members.push("last@x".into());
        let resolution = directory.resolve();
        assert_eq!(members(&resolution, "g0"), ["last@x"]);
    }
}
