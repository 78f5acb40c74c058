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

/// Transitive group membership, computed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Each group's members, nested groups included.
    pub members: BTreeMap<String, BTreeSet<String>>,
    /// Cycle reports and nested names that are not groups.
    pub diagnostics: Vec<Diagnostic>,
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
        let index: BTreeMap<&str, usize> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.as_str(), i))
            .collect();
        let mut diagnostics = Vec::new();
        let edges: Vec<Vec<usize>> = self
            .groups
            .iter()
            .map(|group| {
                group
                    .groups
                    .iter()
                    .filter_map(|child| match index.get(child.as_str()) {
                        Some(&i) => Some(i),
                        None => {
                            diagnostics.push(Diagnostic::error(
                                Code::IdentityUnknownNestedGroup,
                                &self.source,
                                None,
                                format!("IdP group `{}` nests `{child}`, which is not a group in the directory", group.name),
                            ));
                            None
                        }
                    })
                    .collect()
            })
            .collect();

        let components = strongly_connected(&edges);
        let mut component_of = vec![0; self.groups.len()];
        for (c, component) in components.iter().enumerate() {
            for &g in component {
                component_of[g] = c;
            }
        }
        let mut component_members: Vec<BTreeSet<String>> = Vec::with_capacity(components.len());
        for (c, component) in components.iter().enumerate() {
            let mut members = BTreeSet::new();
            for &g in component {
                members.extend(self.groups[g].members.iter().cloned());
                for &child in &edges[g] {
                    let child_component = component_of[child];
                    if child_component != c {
                        // Children finish first, so their members are known.
                        members.extend(component_members[child_component].iter().cloned());
                    }
                }
            }
            let cyclic = component.len() > 1 || edges[component[0]].contains(&component[0]);
            if cyclic {
                let mut names: Vec<&str> = component
                    .iter()
                    .map(|&g| self.groups[g].name.as_str())
                    .collect();
                names.sort();
                diagnostics.push(
                    Diagnostic::error(
                        Code::IdentityGroupCycle,
                        &self.source,
                        None,
                        format!("IdP groups {} nest each other in a cycle", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")),
                    )
                    .with_help("each group in the cycle is taken to contain the members of all of them; fix the nesting in the identity provider")
                    .warning(),
                );
            }
            component_members.push(members);
        }
        let members = self
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                (
                    group.name.clone(),
                    component_members[component_of[g]].clone(),
                )
            })
            .collect();
        Resolution {
            members,
            diagnostics,
        }
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

    fn members(resolution: &Resolution, name: &str) -> Vec<String> {
        resolution.members[name].iter().cloned().collect()
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
