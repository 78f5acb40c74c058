//! A plan narrowed to some kinds of drift: what a drift tick corrects when policy says
//! `drift: { action: report, correct: [missed_deprovision] }`. Pure.

use std::collections::BTreeSet;

use super::action::{Action, Drift, Plan, SlackId};
use crate::config::types::DriftKind;

/// The kind a removal's reason falls under.
pub fn kind_of(drift: Drift) -> DriftKind {
    match drift {
        Drift::GhostAccount => DriftKind::GhostAccount,
        Drift::MissedDeprovision => DriftKind::MissedDeprovision,
        Drift::OutOfScope => DriftKind::OutOfScope,
        Drift::Moved => DriftKind::Moved,
        Drift::NotSelected | Drift::MappingChanged | Drift::ManualAdd => DriftKind::ManualAdd,
    }
}

/// The part of `plan` that corrects drift of `kinds` and nothing else.
///
/// Deactivations and removals keep their own kind; additions to usergroups and channels
/// are `missing_member`, and only for people who already have an account (creating one
/// is a joiner's change, not drift). A usergroup's full member list is recomputed so
/// that what is left out stays as it is in Slack. Creations, renames, roles and the
/// sign-outs of people not deactivated here are left out.
pub fn drift_only(plan: &Plan, kinds: &BTreeSet<DriftKind>) -> Plan {
    let wanted = |drift: Drift| kinds.contains(&kind_of(drift));
    let adds_wanted = kinds.contains(&DriftKind::MissingMember);
    let mut deactivated = BTreeSet::new();
    let mut actions = Vec::new();
    for action in &plan.actions {
        match action {
            Action::DeactivateUser { removal, .. } if wanted(removal.drift) => {
                deactivated.insert(removal.person.email.clone());
                actions.push(action.clone());
            }
            Action::ResetSessions { person, .. } if deactivated.contains(&person.email) => {
                actions.push(action.clone());
            }
            Action::KickFromChannel { removal, .. } if wanted(removal.drift) => {
                actions.push(action.clone());
            }
            Action::InviteToChannel { people, .. } if adds_wanted => {
                let mut narrowed = action.clone();
                if let Action::InviteToChannel { people: kept, .. } = &mut narrowed {
                    kept.retain(|a| a.person.user_id != SlackId::New);
                }
                if people.iter().any(|a| a.person.user_id != SlackId::New) {
                    actions.push(narrowed);
                }
            }
            Action::SetUsergroupMembers { .. } => {
                if let Some(narrowed) = narrow_usergroup(action, &wanted, adds_wanted) {
                    actions.push(narrowed);
                }
            }
            _ => {}
        }
    }
    Plan {
        actions,
        ..plan.clone()
    }
}

/// A usergroup update keeping only the wanted changes; the member list sent is what Slack
/// has with those changes made. `None` when no change is wanted.
fn narrow_usergroup(
    action: &Action,
    wanted: &dyn Fn(Drift) -> bool,
    adds_wanted: bool,
) -> Option<Action> {
    let Action::SetUsergroupMembers {
        workspace,
        usergroup_id,
        handle,
        members,
        adds,
        removes,
        rule,
    } = action
    else {
        return None;
    };
    let (kept_removes, dropped_removes): (Vec<_>, Vec<_>) =
        removes.iter().cloned().partition(|r| wanted(r.drift));
    let (kept_adds, dropped_adds): (Vec<_>, Vec<_>) = adds
        .iter()
        .cloned()
        .partition(|a| adds_wanted && a.person.user_id != SlackId::New);
    if kept_removes.is_empty() && kept_adds.is_empty() {
        return None;
    }
    // Slack today = desired + every removal - every addition; keep today's members for
    // what is left out.
    let dropped: BTreeSet<&str> = dropped_adds
        .iter()
        .map(|a| a.person.email.as_str())
        .collect();
    let mut narrowed: Vec<_> = members
        .iter()
        .filter(|p| !dropped.contains(p.email.as_str()))
        .cloned()
        .chain(dropped_removes.into_iter().map(|r| r.person))
        .collect();
    narrowed.sort();
    narrowed.dedup();
    Some(Action::SetUsergroupMembers {
        workspace: workspace.clone(),
        usergroup_id: usergroup_id.clone(),
        handle: handle.clone(),
        members: narrowed,
        adds: kept_adds,
        removes: kept_removes,
        rule: rule.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::action::{Addition, Person, Removal};
    use crate::plan::desired::RuleRef;

    fn person(name: &str) -> Person {
        Person {
            email: format!("{name}@acme.example"),
            user_id: SlackId::Live(format!("U{}", name.to_uppercase())),
        }
    }

    fn removal(name: &str, drift: Drift) -> Removal {
        Removal {
            person: person(name),
            drift,
            why: String::new(),
        }
    }

    /// Slack has ada, bob (added by hand) and cy (suspended); the plan wants dee in and
    /// bob and cy out, and deactivates cy.
    fn plan() -> Plan {
        Plan {
            actions: vec![
                Action::SetUsergroupMembers {
                    workspace: "T1".into(),
                    usergroup_id: SlackId::Live("S1".into()),
                    handle: "eng".into(),
                    members: vec![person("ada"), person("dee")],
                    adds: vec![Addition {
                        person: person("dee"),
                        grants: Vec::new(),
                    }],
                    removes: vec![
                        removal("bob", Drift::ManualAdd),
                        removal("cy", Drift::MissedDeprovision),
                    ],
                    rule: RuleRef {
                        file: "mappings/eng.yaml".into(),
                        line: 3,
                    },
                },
                Action::DeactivateUser {
                    removal: removal("cy", Drift::MissedDeprovision),
                    impact: Default::default(),
                },
                Action::ResetSessions {
                    person: person("cy"),
                    by: Default::default(),
                },
                Action::DisableUsergroup {
                    workspace: "T1".into(),
                    usergroup_id: "S2".into(),
                    handle: "old".into(),
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn only_the_chosen_kinds_remain_and_the_rest_of_slack_stays_as_it_is() {
        let kinds = BTreeSet::from([DriftKind::MissedDeprovision]);
        let narrowed = drift_only(&plan(), &kinds);
        let Action::SetUsergroupMembers {
            members,
            adds,
            removes,
            ..
        } = &narrowed.actions[0]
        else {
            panic!("{narrowed:?}")
        };
        // cy goes; bob (a manual add, reported only) stays; dee is not added.
        let emails: Vec<&str> = members.iter().map(|p| p.email.as_str()).collect();
        assert_eq!(emails, ["ada@acme.example", "bob@acme.example"]);
        assert!(adds.is_empty());
        assert_eq!(removes.len(), 1);
        assert!(matches!(narrowed.actions[1], Action::DeactivateUser { .. }));
        assert!(matches!(narrowed.actions[2], Action::ResetSessions { .. }));
        assert_eq!(narrowed.actions.len(), 3, "{narrowed:?}");
    }

    #[test]
    fn nothing_chosen_is_nothing_to_do() {
        let kinds = BTreeSet::from([DriftKind::GhostAccount]);
        assert!(drift_only(&plan(), &kinds).actions.is_empty());
        let adds = BTreeSet::from([DriftKind::MissingMember]);
        let narrowed = drift_only(&plan(), &adds);
        let Action::SetUsergroupMembers { members, .. } = &narrowed.actions[0] else {
            panic!("{narrowed:?}")
        };
        let emails: Vec<&str> = members.iter().map(|p| p.email.as_str()).collect();
        assert_eq!(
            emails,
            [
                "ada@acme.example",
                "bob@acme.example",
                "cy@acme.example",
                "dee@acme.example"
            ]
        );
    }
}
