//! Who is a leaver, and what becomes of their account: the one rule.
//!
//! The full sync's leaver phase (`diff`) asks it of every live account; an identity
//! event's fast path (`apply::apply_leaver`) asks it of the one account the event names.
//! Both judge the actions it gives with `policy::verdict`, so the two paths refuse and
//! allow the same cases: an account the config wants is kept; a guest's or a bot's is
//! never touched; a protected person's or the primary owner's is reported, never
//! deactivated; every other active account of someone without a place in `users.scope`
//! is deactivated, then its sessions revoked.

use crate::model::directory::{Directory, PersonId, PersonStatus};
use crate::model::live::{Live, LiveUser};
use crate::plan::action::{Action, Drift, Impact, Person, Removal, SignOut, SlackId};
use crate::plan::desired::Desired;

/// What the rule says of one live account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaver {
    /// Not a leaver: the account is inactive already, or the config wants it.
    Stays,
    /// A guest's or a bot's account: this tool never deactivates those.
    NotOurs,
    /// A leaver who is protected or the primary owner: reported, never deactivated.
    Blocked(Removal),
    /// A leaver: deactivate, then revoke sessions.
    Leaves(Removal),
}

/// Applies the rule to `user`, whose person in the directory is `person` (`None` when
/// the identity provider does not know their email).
pub fn leaver(
    desired: &Desired<'_>,
    directory: &Directory,
    person: Option<PersonId>,
    user: &LiveUser,
) -> Leaver {
    if !user.active {
        return Leaver::Stays;
    }
    if user.bot || user.guest.is_some() {
        return Leaver::NotOurs;
    }
    if person.is_some_and(|id| desired.wants_account(id)) {
        return Leaver::Stays;
    }
    let drift = account_drift(desired, directory, person);
    let removal = Removal {
        person: Person {
            email: user.email.clone(),
            user_id: SlackId::Live(user.id.clone()),
        },
        drift,
        why: deactivation_why(desired, drift),
    };
    if desired.protected.contains(&user.email) || user.primary_owner {
        Leaver::Blocked(removal)
    } else {
        Leaver::Leaves(removal)
    }
}

/// The actions that take a leaver's account, in the order they run: deactivation, then
/// the revocation of their sessions (`by` the Slack plan's means: [`SignOut::on`]).
pub fn leaver_actions(removal: Removal, impact: Impact, by: SignOut) -> [Action; 2] {
    let person = removal.person.clone();
    [
        Action::DeactivateUser { removal, impact },
        Action::ResetSessions { person, by },
    ]
}

/// Why an account should not be where it is, the strongest reason first: unknown to the
/// identity provider, suspended there, outside `users.scope`, or (for a person who
/// should have an account) not selected by a particular rule.
pub fn account_drift(
    desired: &Desired<'_>,
    directory: &Directory,
    person: Option<PersonId>,
) -> Drift {
    let status = person.and_then(|id| {
        desired
            .resolution
            .person(directory, id)
            .map(|p| (id, p.status))
    });
    match status {
        None => Drift::GhostAccount,
        Some((_, PersonStatus::Suspended)) => Drift::MissedDeprovision,
        Some((id, PersonStatus::Active)) if !desired.wants_account(id) => Drift::OutOfScope,
        Some(_) => Drift::NotSelected,
    }
}

/// A deactivation's reason in words, for the three kinds of drift that deactivate.
pub fn deactivation_why(desired: &Desired<'_>, drift: Drift) -> String {
    match drift {
        Drift::GhostAccount => "unknown to the identity provider".to_string(),
        Drift::MissedDeprovision => "suspended in the identity provider".to_string(),
        Drift::OutOfScope => format!(
            "in none of the users.scope groups {}",
            crate::plan::diff::names(&desired.scope)
        ),
        Drift::NotSelected | Drift::Moved | Drift::MappingChanged | Drift::ManualAdd => {
            "not selected".to_string()
        }
    }
}

/// The live accounts [`leaver`] deactivates, by Slack user id with their workspaces:
/// the people whose installed apps are read before planning.
pub fn leaving(
    desired: &Desired<'_>,
    directory: &Directory,
    live: &Live,
) -> Vec<(String, Vec<String>)> {
    let resolution = desired.resolution;
    live.users
        .iter()
        .filter(|user| {
            let person = resolution.id(&user.email);
            matches!(leaver(desired, directory, person, user), Leaver::Leaves(_))
        })
        .map(|user| (user.id.clone(), user.workspaces.clone()))
        .collect()
}
