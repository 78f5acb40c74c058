//! Before a destructive action of a plan made from the mirror, the object is read again:
//! the action goes ahead only if it is still needed, and only on the object the plan
//! named. A channel renamed since the plan (and another created with its name) is never
//! acted on by its old id; a person already gone from a channel is not kicked; a
//! usergroup's member list is sent as Slack holds it now, less the plan's removals and
//! plus its additions, so nobody the plan did not read is removed by the whole-list
//! write. Adds may trust the mirror; nothing that takes something away does.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use super::{Executor, Outcome, Ran};
use crate::model::live::LiveChannel;
use crate::plan::action::{Action, Addition, Person, Removal, SlackId, UsergroupField};
use crate::slack::reader;

impl Executor<'_> {
    /// `Some(ran)` when a destructive action must not be sent as planned: already done,
    /// or its object changed identity or is gone. `None` to go ahead (always, unless the
    /// run re-checks).
    pub(super) async fn recheck(&self, action: &Action) -> Option<Ran> {
        if !self.context.recheck {
            return None;
        }
        match action {
            Action::KickFromChannel {
                workspace,
                channel,
                channel_id,
                removal,
            } => {
                self.recheck_kick(workspace, channel, channel_id, removal)
                    .await
            }
            Action::DeactivateUser { removal, .. } => self.recheck_leaver(&removal.person).await,
            Action::DisableUsergroup {
                workspace,
                usergroup_id,
                handle,
            } => {
                let group = self.usergroup_now(workspace, usergroup_id, handle).await;
                match group {
                    Ok(group) if group.disabled => Some(Ran::new(Outcome::AlreadyDone)),
                    Ok(_) => None,
                    Err(ran) => Some(ran),
                }
            }
            Action::UpdateUsergroup {
                workspace,
                usergroup_id,
                handle,
                fields,
                ..
            } => {
                let group = self.usergroup_now(workspace, usergroup_id, handle).await;
                match group {
                    Ok(group) => fields
                        .iter()
                        .all(|change| {
                            let now = match change.field {
                                UsergroupField::Name => &group.name,
                                UsergroupField::Description => &group.description,
                            };
                            *now == change.to
                        })
                        .then(|| Ran::new(Outcome::AlreadyDone)),
                    Err(ran) => Some(ran),
                }
            }
            _ => None,
        }
    }

    async fn recheck_kick(
        &self,
        workspace: &str,
        name: &str,
        id: &str,
        removal: &Removal,
    ) -> Option<Ran> {
        let user = match self.ids().user(&removal.person) {
            Ok(user) => user,
            Err(outcome) => return Some(Ran::new(outcome)),
        };
        let channel = match self.channel_now(id).await {
            Ok(channel) => channel,
            Err(ran) => return Some(ran),
        };
        let Some(channel) = channel else {
            return Some(skipped(format!("#{name} ({id}) no longer exists")));
        };
        if let Some(why) = changed_channel(&channel, workspace, name) {
            return Some(skipped(why));
        }
        let member = channel
            .members
            .as_ref()
            .is_some_and(|members| members.contains(&user));
        (!member).then(|| Ran::new(Outcome::AlreadyDone))
    }

    async fn recheck_leaver(&self, person: &Person) -> Option<Ran> {
        let id = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Some(Ran::new(outcome)),
        };
        match reader::read_user(self.context.client, &id).await {
            Ok(None) => Some(skipped(format!(
                "{} ({id}) is no longer in Slack",
                person.email
            ))),
            Ok(Some(user)) if !user.email.eq_ignore_ascii_case(&person.email) => Some(skipped(
                format!("{id} is no longer {}: not acted on", person.email),
            )),
            Ok(Some(user)) if !user.active => Some(Ran::new(Outcome::AlreadyDone)),
            Ok(Some(_)) => None,
            Err(error) => Some(Ran::new(Outcome::Failed(format!(
                "cannot read {} again before deactivating them: {error}",
                person.email
            )))),
        }
    }

    /// The member list to send for a usergroup: the plan's, or, when the run re-checks,
    /// Slack's now with the plan's removals taken out and its additions put in. `Err`
    /// when nothing is to be sent.
    pub(super) async fn members_now<'m>(
        &self,
        workspace: &str,
        usergroup_id: &SlackId,
        handle: &str,
        members: &'m [Person],
        adds: &[Addition],
        removes: &[Removal],
    ) -> Result<Cow<'m, [Person]>, Ran> {
        let Some(id) = usergroup_id.live().filter(|_| self.context.recheck) else {
            return Ok(Cow::Borrowed(members));
        };
        let group = self.usergroup_now(workspace, id, handle).await?;
        let ids = self.ids();
        let removed: BTreeSet<String> = removes
            .iter()
            .filter_map(|r| ids.user(&r.person).ok())
            .collect();
        let by_id: HashMap<&str, &str> = ids
            .users
            .iter()
            .map(|(email, id)| (id.as_str(), email.as_str()))
            .collect();
        let mut wanted: Vec<Person> = group
            .members
            .iter()
            .filter(|member| !removed.contains(*member))
            .map(|member| Person {
                email: by_id
                    .get(member.as_str())
                    .unwrap_or(&member.as_str())
                    .to_string(),
                user_id: SlackId::Live(member.clone()),
            })
            .collect();
        let now: BTreeSet<&str> = group.members.iter().map(String::as_str).collect();
        for addition in adds {
            match ids.user(&addition.person) {
                Ok(id) if now.contains(id.as_str()) => {}
                _ => wanted.push(addition.person.clone()),
            }
        }
        let unchanged = wanted.len() == now.len()
            && wanted
                .iter()
                .all(|p| p.user_id.live().is_some_and(|id| now.contains(id)));
        if unchanged {
            return Err(Ran::new(Outcome::AlreadyDone));
        }
        Ok(Cow::Owned(wanted))
    }

    /// A usergroup as Slack holds it now, if it still has the plan's handle.
    async fn usergroup_now(
        &self,
        workspace: &str,
        id: &str,
        handle: &str,
    ) -> Result<crate::model::live::LiveUsergroup, Ran> {
        let read = reader::read_usergroups_in(self.context.client, workspace).await;
        let groups = match read {
            Ok((groups, _)) => groups,
            Err(error) => {
                return Err(Ran::new(Outcome::Failed(format!(
                    "cannot read @{handle} again before changing it: {error}"
                ))));
            }
        };
        match groups.into_iter().find(|g| g.id == id) {
            None => Err(skipped(format!("@{handle} ({id}) no longer exists"))),
            Some(group) if group.handle != handle => Err(skipped(format!(
                "@{handle} ({id}) is @{} since the plan: not acted on by its old id; the next plan sees it as it is",
                group.handle
            ))),
            Some(group) => Ok(group),
        }
    }

    /// A channel as Slack holds it now, members included: read once a run (the kicks of
    /// one channel share the read, less the people they kicked).
    async fn channel_now(&self, id: &str) -> Result<Option<LiveChannel>, Ran> {
        let mut channels = self.channels_now.lock().await;
        if let Some(channel) = channels.get(id) {
            return Ok(channel.clone());
        }
        match reader::read_channel(self.context.client, id, true).await {
            Ok(channel) => {
                channels.insert(id.to_string(), channel.clone());
                Ok(channel)
            }
            Err(error) => Err(Ran::new(Outcome::Failed(format!(
                "cannot read {id} again before removing anyone: {error}"
            )))),
        }
    }
}

/// Why a channel is no longer the plan's: renamed, moved or archived since.
fn changed_channel(channel: &LiveChannel, workspace: &str, name: &str) -> Option<String> {
    if channel.name != name || channel.workspace != workspace {
        Some(format!(
            "#{name} ({}) is #{} since the plan: not acted on by its old id; the next plan sees it as it is",
            channel.id, channel.name
        ))
    } else if channel.archived {
        Some(format!(
            "#{name} ({}) was archived since the plan",
            channel.id
        ))
    } else {
        None
    }
}

fn skipped(why: String) -> Ran {
    Ran::new(Outcome::Skipped(why))
}
