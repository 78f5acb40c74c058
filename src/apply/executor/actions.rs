//! One method per kind of action: the write, what to read back when its outcome is
//! unclear, and what its reply or read-back must show. `decide` is the one place that
//! turns an unclear write into a read-back and a second decision.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{DECISIONS, Executor, Halt, Outcome, Ran, WriteError, classify};
use crate::model::live::LiveUser;
use crate::plan::action::{
    Action, NewProfile, Person, ProfileField, Role, SignOut, SlackId, UsergroupField,
};
use crate::slack::client::SlackError;
use crate::slack::writer;

impl Executor<'_> {
    /// One `match` over the action.
    ///
    /// One piece: one arm per [`Action`] variant, exhaustive, each a call to the method
    /// that writes it; a new action cannot be planned and then silently not written.
    pub(super) async fn execute(&self, action: &Action, canary: bool) -> Ran {
        if let Some(ran) = self.recheck(action).await {
            return ran;
        }
        match action {
            Action::CreateUser {
                person, profile, ..
            } => self.create_user(&person.email, profile).await,
            Action::ReactivateUser { person } => self.set_active(person, true, canary).await,
            Action::DeactivateUser { removal, .. } => {
                self.set_active(&removal.person, false, true).await
            }
            Action::UpdateProfile { person, fields } => {
                let changes: Vec<(ProfileField, &str)> =
                    fields.iter().map(|f| (f.field, f.to.as_str())).collect();
                self.update_profile(person, &changes, canary).await
            }
            Action::AssignWorkspace { person, workspace } => {
                self.assign_workspace(person, workspace).await
            }
            Action::CreateUsergroup {
                workspace,
                handle,
                name,
                description,
                channels,
                ..
            } => {
                self.create_usergroup(workspace, handle, name, description, channels)
                    .await
            }
            Action::UpdateUsergroup {
                workspace,
                usergroup_id,
                fields,
                ..
            } => {
                let changes: Vec<(UsergroupField, &str)> =
                    fields.iter().map(|f| (f.field, f.to.as_str())).collect();
                self.update_usergroup(workspace, usergroup_id, &changes)
                    .await
            }
            Action::EnableUsergroup {
                workspace,
                usergroup_id,
                ..
            } => self.set_enabled(workspace, usergroup_id, true).await,
            Action::DisableUsergroup {
                workspace,
                usergroup_id,
                ..
            } => self.set_enabled(workspace, usergroup_id, false).await,
            Action::SetUsergroupMembers {
                workspace,
                usergroup_id,
                handle,
                members,
                adds,
                removes,
                ..
            } => {
                let members = self
                    .members_now(workspace, usergroup_id, handle, members, adds, removes)
                    .await;
                match members {
                    Ok(members) => {
                        self.set_members(workspace, usergroup_id, handle, &members, canary)
                            .await
                    }
                    Err(ran) => ran,
                }
            }
            Action::CreateChannel {
                workspace,
                name,
                private,
                ..
            } => self.create_channel(workspace, name, *private).await,
            Action::InviteToChannel {
                workspace,
                channel,
                channel_id,
                people,
                ..
            } => {
                let people: Vec<&Person> = people.iter().map(|a| &a.person).collect();
                self.invite(workspace, channel, channel_id, &people, canary)
                    .await
            }
            Action::KickFromChannel {
                channel_id,
                removal,
                ..
            } => self.kick(channel_id, &removal.person).await,
            Action::ResetSessions {
                person,
                by: SignOut::SessionReset,
            } => self.reset_sessions(person).await,
            Action::ResetSessions {
                person,
                by: SignOut::Deactivation,
            } => self.signed_out_by_deactivation(person).await,
            Action::SetRole {
                person,
                workspace,
                role,
            } => self.set_role(person, workspace, *role).await,
        }
    }
    /// Runs `write` and, when its outcome is unclear, `read_back` to decide: done, or try
    /// again (at most [`DECISIONS`] times in all). Never retries a refusal.
    async fn decide<W, R, WF, RF>(&self, write: W, read_back: R) -> Ran
    where
        W: Fn() -> WF,
        WF: std::future::Future<Output = Result<Vec<String>, WriteError>>,
        R: Fn() -> RF,
        RF: std::future::Future<Output = Result<bool, SlackError>>,
    {
        let mut ran = Ran::new(Outcome::Failed(String::new()));
        for attempt in 0..DECISIONS {
            ran.writes += 1;
            match write().await {
                Ok(ids) => {
                    ran.outcome = Outcome::Done;
                    ran.slack_ids = ids;
                    return ran;
                }
                Err(WriteError::Refused(message)) => {
                    ran.failed += 1;
                    ran.outcome = Outcome::Failed(message);
                    return ran;
                }
                Err(WriteError::Unclear(message)) => {
                    ran.failed += 1;
                    tracing::warn!(%message, "a write's outcome is unclear; reading it back");
                    match read_back().await {
                        Ok(true) => {
                            ran.outcome = if attempt == 0 {
                                Outcome::AlreadyDone
                            } else {
                                Outcome::Done
                            };
                            return ran;
                        }
                        Ok(false) => {
                            ran.outcome = Outcome::Failed(message);
                            self.context.client.backoff(attempt as u32 + 1).await;
                        }
                        Err(error) => {
                            ran.outcome = Outcome::Failed(format!(
                                "{message}; the read-back failed too ({error})"
                            ));
                            return ran;
                        }
                    }
                }
            }
        }
        ran
    }

    async fn create_user(&self, email: &str, profile: &NewProfile) -> Ran {
        let client = self.context.client;
        let created: Mutex<Option<LiveUser>> = Mutex::new(None);
        let write = || async {
            match writer::create_user(client, email, profile).await {
                Ok(user) => {
                    let id = user.id.clone();
                    *created.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
                    Ok(vec![id])
                }
                Err(SlackError::Api { error, .. }) if error == "email_taken" => {
                    // Taken by an account we did not see when planning: look it up.
                    match writer::find_user(client, email).await {
                        Ok(Some(user)) if user.active => {
                            let id = user.id.clone();
                            *created.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
                            Ok(vec![id])
                        }
                        _ => Err(WriteError::Refused(format!(
                            "{email}: email_taken by a deactivated account; reactivate it instead"
                        ))),
                    }
                }
                Err(error) => Err(classify(error)),
            }
        };
        let read_back = || async {
            let found = writer::find_user(client, email).await?;
            let exists = found.as_ref().is_some_and(|u| u.active);
            if exists {
                *created.lock().unwrap_or_else(|p| p.into_inner()) = found;
            }
            Ok(exists)
        };
        let mut ran = self.decide(write, read_back).await;
        let user = created.into_inner().unwrap_or_else(|p| p.into_inner());
        match (&ran.outcome, user) {
            (outcome, Some(user)) if outcome.succeeded() => {
                if !user.active {
                    ran.surprise = Some(Halt {
                        reason: format!("{email} was created inactive; nobody asked for that"),
                        affected: vec![email.to_string()],
                    });
                }
                ran.slack_ids = vec![user.id.clone()];
                self.ids().users.insert(email.to_string(), user.id);
            }
            (Outcome::Failed(why), _) => {
                self.ids().failed_people.insert(
                    email.to_string(),
                    format!("its account was not created ({why})"),
                );
            }
            _ => {}
        }
        ran
    }

    /// Reactivation (`active: true`) or deactivation (`active: false`): the reply must
    /// show it, and a read-back (always for deactivations, for canaries otherwise) too.
    async fn set_active(&self, person: &Person, active: bool, read_back_always: bool) -> Ran {
        let id = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        let client = self.context.client;
        let shown: Mutex<Option<bool>> = Mutex::new(None);
        let write = || async {
            let user = writer::patch_user(client, &id, vec![writer::set_active(active)])
                .await
                .map_err(classify)?;
            *shown.lock().unwrap_or_else(|p| p.into_inner()) = Some(user.active);
            Ok(vec![id.clone()])
        };
        let read_back = || async { Ok(writer::read_user(client, &id).await?.active == active) };
        let mut ran = self.decide(write, read_back).await;
        ran.slack_ids = vec![id.clone()];
        if !ran.outcome.succeeded() {
            if !active {
                let why = format!("its deactivation failed ({})", ran.outcome.detail());
                self.ids().failed_people.insert(person.email.clone(), why);
            }
            return ran;
        }
        let replied = shown.into_inner().unwrap_or_else(|p| p.into_inner());
        let verified = if read_back_always {
            match writer::read_user(client, &id).await {
                Ok(user) => Some(user.active),
                Err(error) => {
                    ran.outcome = Outcome::Failed(format!("the read-back failed: {error}"));
                    return ran;
                }
            }
        } else {
            replied
        };
        if replied.is_some_and(|a| a != active) || verified.is_some_and(|a| a != active) {
            let word = if active { "active" } else { "inactive" };
            ran.outcome = Outcome::Failed(format!("Slack does not show {} {word}", person.email));
            if active {
                ran.surprise = Some(Halt {
                    reason: format!(
                        "{} is inactive after a reactivation; nobody asked for that",
                        person.email
                    ),
                    affected: vec![person.email.clone()],
                });
            }
        }
        ran
    }

    async fn update_profile(
        &self,
        person: &Person,
        changes: &[(ProfileField, &str)],
        canary: bool,
    ) -> Ran {
        let id = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        // The manager is named by email in the plan and by Slack id on the wire.
        let mut operations = Vec::new();
        for (field, value) in changes {
            let value = if *field == ProfileField::Manager {
                match self.ids().users.get(*value) {
                    Some(manager) => manager.clone(),
                    None => {
                        return Ran::new(Outcome::Skipped(format!(
                            "the manager {value} has no account"
                        )));
                    }
                }
            } else {
                value.to_string()
            };
            operations.push(writer::profile_field(*field, &value));
        }
        let client = self.context.client;
        let replied: Mutex<Option<LiveUser>> = Mutex::new(None);
        let write = || async {
            let user = writer::patch_user(client, &id, operations.clone())
                .await
                .map_err(classify)?;
            *replied.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
            Ok(vec![id.clone()])
        };
        let read_back = || async {
            let user = writer::read_user(client, &id).await?;
            let holds = profile_holds(&user, changes, &self.ids().users);
            *replied.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
            Ok(holds)
        };
        let mut ran = self.decide(write, read_back).await;
        ran.slack_ids = vec![id.clone()];
        if !ran.outcome.succeeded() {
            return ran;
        }
        let mut shown = replied.into_inner().unwrap_or_else(|p| p.into_inner());
        if canary {
            match writer::read_user(client, &id).await {
                Ok(user) => shown = Some(user),
                Err(error) => {
                    ran.outcome = Outcome::Failed(format!("the canary read-back failed: {error}"));
                    return ran;
                }
            }
        }
        self.verify_update(person, &id, shown.as_ref(), changes, &mut ran);
        ran
    }

    /// A profile update must leave the account active and show the new values.
    fn verify_update(
        &self,
        person: &Person,
        id: &str,
        shown: Option<&LiveUser>,
        changes: &[(ProfileField, &str)],
        ran: &mut Ran,
    ) {
        let Some(user) = shown else { return };
        if !user.active {
            ran.outcome = Outcome::Failed(format!(
                "{} ({id}) is inactive after a profile update",
                person.email
            ));
            ran.surprise = Some(Halt {
                reason: format!(
                    "{} ({id}) was deactivated by a profile update nobody meant to deactivate them with (Slack's April 2024 SCIM regression behaved so)",
                    person.email
                ),
                affected: vec![person.email.clone()],
            });
        } else if !profile_holds(user, changes, &self.ids().users) {
            ran.outcome = Outcome::Failed(format!(
                "Slack does not show the new profile of {}",
                person.email
            ));
        }
    }

    async fn assign_workspace(&self, person: &Person, workspace: &str) -> Ran {
        let id = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        let client = self.context.client;
        let write = || async {
            writer::assign_workspace(client, &id, workspace)
                .await
                .map_err(classify)?;
            Ok(vec![id.clone()])
        };
        let read_back = || async { writer::in_workspace(client, &id, workspace).await };
        self.decide(write, read_back).await
    }

    async fn create_usergroup(
        &self,
        workspace: &str,
        handle: &str,
        name: &str,
        description: &str,
        channels: &[String],
    ) -> Ran {
        let key = (workspace.to_string(), handle.to_string());
        // Default channels that exist (live or created earlier in this run) by id.
        let channel_ids: Vec<String> = {
            let ids = self.ids();
            channels
                .iter()
                .filter_map(|c| {
                    ids.channels
                        .get(&(workspace.to_string(), c.clone()))
                        .cloned()
                })
                .collect()
        };
        let client = self.context.client;
        let created: Mutex<Option<String>> = Mutex::new(None);
        let write = || async {
            let group = writer::create_usergroup(
                client,
                workspace,
                handle,
                name,
                description,
                &channel_ids,
            )
            .await
            .map_err(classify)?;
            *created.lock().unwrap_or_else(|p| p.into_inner()) = Some(group.id.clone());
            Ok(vec![group.id])
        };
        let read_back = || async {
            let groups = writer::list_usergroups(client, workspace).await?;
            let found = groups.into_iter().find(|g| g.handle == handle);
            let exists = found.is_some();
            *created.lock().unwrap_or_else(|p| p.into_inner()) = found.map(|g| g.id);
            Ok(exists)
        };
        let mut ran = self.decide(write, read_back).await;
        let created = created.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut ids = self.ids();
        let ids = &mut *ids;
        remember(
            &mut ran,
            created,
            key,
            &mut ids.usergroups,
            &mut ids.failed_usergroups,
        );
        ran
    }

    async fn update_usergroup(
        &self,
        workspace: &str,
        id: &str,
        changes: &[(UsergroupField, &str)],
    ) -> Ran {
        let client = self.context.client;
        let write = || async {
            let group = writer::update_usergroup(client, workspace, id, changes)
                .await
                .map_err(classify)?;
            Ok(vec![group.id])
        };
        let read_back = || async {
            let groups = writer::list_usergroups(client, workspace).await?;
            Ok(groups.iter().any(|g| {
                g.id == id
                    && changes.iter().all(|(field, to)| match field {
                        UsergroupField::Name => g.name == *to,
                        UsergroupField::Description => g.description == *to,
                    })
            }))
        };
        self.decide(write, read_back).await
    }

    async fn set_enabled(&self, workspace: &str, id: &str, enabled: bool) -> Ran {
        let client = self.context.client;
        let write = || async {
            match writer::set_usergroup_enabled(client, workspace, id, enabled).await {
                Ok(group) => Ok(vec![group.id]),
                Err(SlackError::Api { error, .. })
                    if error == "already_enabled" || error == "already_disabled" =>
                {
                    Ok(vec![id.to_string()])
                }
                Err(error) => Err(classify(error)),
            }
        };
        let read_back = || async {
            let groups = writer::list_usergroups(client, workspace).await?;
            Ok(groups.iter().any(|g| g.id == id && g.disabled != enabled))
        };
        self.decide(write, read_back).await
    }

    async fn set_members(
        &self,
        workspace: &str,
        usergroup_id: &SlackId,
        handle: &str,
        members: &[Person],
        canary: bool,
    ) -> Ran {
        let key = (workspace.to_string(), handle.to_string());
        let (group, users, skipped) = {
            let ids = self.ids();
            let group = match target(usergroup_id, &ids.usergroups, &ids.failed_usergroups, &key) {
                Ok(group) => group,
                Err(why) => return Ran::new(Outcome::Skipped(format!("@{handle}: {why}"))),
            };
            let (users, skipped) = ids.users_of(members);
            (group, users, skipped)
        };
        if users.is_empty() {
            return Ran::new(Outcome::Skipped(format!(
                "@{handle}: none of its members has an account ({})",
                skipped.join(", ")
            )));
        }
        let mut wanted = users.clone();
        wanted.sort();
        let client = self.context.client;
        let holds = || async {
            let groups = writer::list_usergroups(client, workspace).await?;
            Ok(groups.iter().any(|g| g.id == group && g.users == wanted))
        };
        let write = || async {
            writer::set_usergroup_members(client, workspace, &group, &users)
                .await
                .map_err(classify)?;
            Ok(vec![group.clone()])
        };
        let mut ran = self.decide(write, holds).await;
        if canary {
            confirm(
                &mut ran,
                holds(),
                &format!("@{handle} with its new members"),
            )
            .await;
        }
        without(&mut ran, &skipped, "set");
        ran
    }

    async fn create_channel(&self, workspace: &str, name: &str, private: bool) -> Ran {
        let key = (workspace.to_string(), name.to_string());
        let client = self.context.client;
        let created: Mutex<Option<String>> = Mutex::new(None);
        let write = || async {
            let id = match writer::create_channel(client, workspace, name, private).await {
                Ok(id) => id,
                Err(SlackError::Api { error, .. }) if error == "name_taken" => {
                    match writer::find_channel(client, workspace, name).await {
                        Ok(Some(id)) => id,
                        _ => {
                            return Err(WriteError::Refused(format!(
                                "#{name}: name_taken by a channel the bot cannot see"
                            )));
                        }
                    }
                }
                Err(error) => return Err(classify(error)),
            };
            *created.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
            Ok(vec![id])
        };
        let read_back = || async {
            let found = writer::find_channel(client, workspace, name).await?;
            let exists = found.is_some();
            *created.lock().unwrap_or_else(|p| p.into_inner()) = found;
            Ok(exists)
        };
        let mut ran = self.decide(write, read_back).await;
        let created = created.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut ids = self.ids();
        let ids = &mut *ids;
        remember(
            &mut ran,
            created,
            key,
            &mut ids.channels,
            &mut ids.failed_channels,
        );
        ran
    }

    async fn invite(
        &self,
        workspace: &str,
        channel: &str,
        channel_id: &SlackId,
        people: &[&Person],
        canary: bool,
    ) -> Ran {
        let key = (workspace.to_string(), channel.to_string());
        let (id, users, skipped) = {
            let ids = self.ids();
            let id = match target(channel_id, &ids.channels, &ids.failed_channels, &key) {
                Ok(id) => id,
                Err(why) => return Ran::new(Outcome::Skipped(format!("#{channel}: {why}"))),
            };
            let (users, skipped) = ids.users_of(people.iter().copied());
            (id, users, skipped)
        };
        if users.is_empty() {
            return Ran::new(Outcome::Skipped(format!(
                "#{channel}: nobody to invite has an account ({})",
                skipped.join(", ")
            )));
        }
        let client = self.context.client;
        let missing = Mutex::new(users.clone());
        let all_in = || async {
            let members = writer::channel_members(client, &id).await?;
            let left: Vec<String> = users
                .iter()
                .filter(|u| !members.contains(u))
                .cloned()
                .collect();
            let done = left.is_empty();
            *missing.lock().unwrap_or_else(|p| p.into_inner()) = left;
            Ok(done)
        };
        let write = || async {
            // After an unclear invite, only those still missing are invited again.
            let batch = missing.lock().unwrap_or_else(|p| p.into_inner()).clone();
            writer::invite(client, &id, &batch)
                .await
                .map_err(classify)?;
            Ok(vec![id.clone()])
        };
        let mut ran = self.decide(write, all_in).await;
        if canary {
            confirm(
                &mut ran,
                all_in(),
                &format!("everyone invited in #{channel}"),
            )
            .await;
        }
        without(&mut ran, &skipped, "invited");
        ran
    }

    async fn kick(&self, channel: &str, person: &Person) -> Ran {
        let user = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        let client = self.context.client;
        let write = || async {
            writer::kick(client, channel, &user)
                .await
                .map_err(classify)?;
            Ok(vec![channel.to_string(), user.clone()])
        };
        let read_back = || async {
            Ok(!writer::channel_members(client, channel)
                .await?
                .contains(&user))
        };
        self.decide(write, read_back).await
    }

    async fn set_role(&self, person: &Person, workspace: &str, role: Role) -> Ran {
        let id = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        let client = self.context.client;
        let write = || async {
            writer::set_role(client, workspace, &id, role)
                .await
                .map_err(classify)?;
            Ok(vec![id.clone()])
        };
        let read_back = || async { writer::has_role(client, workspace, &id, role).await };
        self.decide(write, read_back).await
    }

    /// Signing out cannot be read back (no API lists a person's sessions on every
    /// plan); a reset is harmless to repeat, so an unclear one is sent once more.
    async fn reset_sessions(&self, person: &Person) -> Ran {
        let id = match self.leaver_id(person) {
            Ok(id) => id,
            Err(ran) => return ran,
        };
        let client = self.context.client;
        let write = || async {
            writer::reset_sessions(client, &id)
                .await
                .map_err(classify)?;
            Ok(vec![id.clone()])
        };
        self.decide(write, || async { Ok(false) }).await
    }
}

impl Executor<'_> {
    /// The Slack id of a leaver to sign out: skipped when an earlier action failed them
    /// (their deactivation), unknown when no account was found.
    pub(super) fn leaver_id(&self, person: &Person) -> Result<String, Ran> {
        if let Some(why) = self.ids().failed_people.get(&person.email) {
            return Err(Ran::new(Outcome::Skipped(format!(
                "{}: {why}",
                person.email
            ))));
        }
        self.ids().user(person).map_err(Ran::new)
    }

    /// Business+ has no session API: Slack signs a deactivated account out of every
    /// device, so the sign-out is the deactivation, confirmed by reading the account back
    /// (SCIM `GET /Users/{id}`). No write is sent.
    async fn signed_out_by_deactivation(&self, person: &Person) -> Ran {
        let id = match self.leaver_id(person) {
            Ok(id) => id,
            Err(ran) => return ran,
        };
        let mut ran = Ran::new(match writer::read_user(self.context.client, &id).await {
            Ok(user) if !user.active => Outcome::Done,
            Ok(_) => Outcome::Failed(format!(
                "{} is still active: on Business+ only the deactivation signs them out",
                person.email
            )),
            Err(error) => Outcome::Failed(format!(
                "cannot read {} back to confirm the sign-out: {error}",
                person.email
            )),
        });
        ran.slack_ids = vec![id];
        ran
    }
}

/// Whether an account shows every changed profile field (the manager by Slack id).
fn profile_holds(
    user: &LiveUser,
    changes: &[(ProfileField, &str)],
    users: &HashMap<String, String>,
) -> bool {
    changes.iter().all(|(field, to)| match field {
        ProfileField::GivenName => user.given_name == *to,
        ProfileField::FamilyName => user.family_name == *to,
        ProfileField::Title => user.title == *to,
        ProfileField::Department => user.department == *to,
        ProfileField::Manager => user.manager.as_deref() == users.get(*to).map(String::as_str),
    })
}

/// Records a usergroup or channel the run created, for the actions that name it later,
/// or why it was not, so they are skipped with the reason.
fn remember(
    ran: &mut Ran,
    created: Option<String>,
    key: (String, String),
    ids: &mut HashMap<(String, String), String>,
    failed: &mut HashMap<(String, String), String>,
) {
    match created {
        Some(id) if ran.outcome.succeeded() => {
            ran.slack_ids = vec![id.clone()];
            ids.insert(key, id);
        }
        _ => {
            let why = format!("it was not created ({})", ran.outcome.detail());
            failed.insert(key, why);
        }
    }
}

/// The id of a usergroup or channel an action targets: live, or created earlier in this
/// run; otherwise why it is missing.
fn target(
    id: &SlackId,
    created: &HashMap<(String, String), String>,
    failed: &HashMap<(String, String), String>,
    key: &(String, String),
) -> Result<String, String> {
    match id {
        SlackId::Live(id) => Ok(id.clone()),
        SlackId::New => created.get(key).cloned().ok_or_else(|| {
            failed
                .get(key)
                .cloned()
                .unwrap_or_else(|| "it does not exist".to_string())
        }),
    }
}

/// A canary's read-back: a write that succeeded must show, or the action fails.
async fn confirm(
    ran: &mut Ran,
    read_back: impl std::future::Future<Output = Result<bool, SlackError>>,
    what: &str,
) {
    if !ran.outcome.succeeded() {
        return;
    }
    match read_back.await {
        Ok(true) => {}
        Ok(false) => ran.outcome = Outcome::Failed(format!("the read-back does not show {what}")),
        Err(error) => {
            ran.outcome = Outcome::Failed(format!("the canary read-back failed: {error}"))
        }
    }
}

/// A membership write that left out people without an account is not a full success.
fn without(ran: &mut Ran, skipped: &[String], verb: &str) {
    if ran.outcome.succeeded() && !skipped.is_empty() {
        ran.outcome = Outcome::Failed(format!(
            "{verb} without {} (no account)",
            skipped.join(", ")
        ));
    }
}
