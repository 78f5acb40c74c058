//! The Slack calls that change things, and the reads that check them. Each function is
//! one call; the executor (`apply`) decides what to call and what a result means.
//!
//! Accounts go through SCIM (create, profile, reactivate, deactivate with `PATCH active`
//! so the change is visible at once: never `DELETE`, never a hard delete); usergroups,
//! channels and workspace assignment through the Web API; sessions through
//! `admin.users.session.reset`.

use serde_json::{Value, json};

use super::client::{Credential, SlackClient, SlackError};
use crate::model::live::LiveUser;
use crate::plan::action::{NewProfile, ProfileField, Role, UsergroupField};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM `userName` for a new account: the email's local part, as Slack would make it.
fn user_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(21)
        .collect()
}

/// `POST /Users`: a new active account. Returns it as Slack shows it.
pub async fn create_user(
    client: &SlackClient,
    email: &str,
    profile: &NewProfile,
) -> Result<LiveUser, SlackError> {
    let mut body = json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": user_name(email),
        "emails": [{"value": email, "type": "work", "primary": true}],
        "active": true,
        "name": {"givenName": profile.given_name, "familyName": profile.family_name},
    });
    if !profile.title.is_empty() {
        body["title"] = json!(profile.title);
    }
    if !profile.department.is_empty() {
        body[ENTERPRISE] = json!({"department": profile.department});
    }
    let reply = client
        .scim_write(reqwest::Method::POST, "Users", Some(&body))
        .await?;
    Ok(super::reader::scim_user(&reply, None))
}

/// `PATCH /Users/{id}` with the given operations; returns the account as the reply shows.
pub async fn patch_user(
    client: &SlackClient,
    id: &str,
    operations: Vec<Value>,
) -> Result<LiveUser, SlackError> {
    let body = json!({"schemas": [PATCH_OP], "Operations": operations});
    let reply = client
        .scim_write(reqwest::Method::PATCH, &format!("Users/{id}"), Some(&body))
        .await?;
    Ok(super::reader::scim_user(&reply, None))
}

/// The PATCH operation that sets `active`.
pub fn set_active(active: bool) -> Value {
    json!({"op": "replace", "path": "active", "value": active})
}

/// The PATCH operation for one profile field as the plan names it; `value` for the
/// manager is their Slack id.
pub fn profile_field(field: ProfileField, value: &str) -> Value {
    let path = match field {
        ProfileField::GivenName => "name.givenName".to_string(),
        ProfileField::FamilyName => "name.familyName".to_string(),
        ProfileField::Title => "title".to_string(),
        ProfileField::Department => format!("{ENTERPRISE}:department"),
        ProfileField::Manager => format!("{ENTERPRISE}:manager.managerId"),
    };
    json!({"op": "replace", "path": path, "value": value})
}

/// `GET /Users/{id}`.
pub async fn read_user(client: &SlackClient, id: &str) -> Result<LiveUser, SlackError> {
    let reply = client.scim_get(&format!("Users/{id}")).await?;
    Ok(super::reader::scim_user(&reply, None))
}

/// The account with this email, active or not (`GET /Users?filter=email eq "..."`).
pub async fn find_user(client: &SlackClient, email: &str) -> Result<Option<LiveUser>, SlackError> {
    Ok(scim_user_by_email(client, email)
        .await?
        .map(|resource| super::reader::scim_user(&resource, None)))
}

/// The SCIM resource of the account with `email`, if there is one. SCIM v2 documents
/// only the `userName eq` filter, so that comes first (with the userName Slack makes from
/// an email); `email eq`, documented for v1 only, is tried next, and a server that refuses
/// it is read page by page instead: slower, never wrong.
async fn scim_user_by_email(
    client: &SlackClient,
    email: &str,
) -> Result<Option<Value>, SlackError> {
    let same_email = |resource: &Value| {
        resource
            .pointer("/emails")
            .and_then(Value::as_array)
            .is_some_and(|emails| {
                emails.iter().any(|e| {
                    e.get("value")
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.eq_ignore_ascii_case(email))
                })
            })
    };
    let first_match = |reply: &Value| {
        reply
            .get("Resources")
            .and_then(Value::as_array)
            .and_then(|resources| resources.iter().find(|r| same_email(r)).cloned())
    };
    let by_user_name = format!("userName eq \"{}\"", user_name(email));
    let reply = client
        .scim_get(&format!("Users?filter={}", url_encode(&by_user_name)))
        .await?;
    if let Some(found) = first_match(&reply) {
        return Ok(Some(found));
    }
    // The address comes from the identity provider: quoted as a SCIM string, never
    // spliced into the filter's grammar.
    let by_email = format!("email eq {}", scim_string(email));
    match client
        .scim_get(&format!("Users?filter={}", url_encode(&by_email)))
        .await
    {
        Ok(reply) => Ok(first_match(&reply)),
        // Refused: the whole listing, through the client's one SCIM paginator.
        Err(SlackError::Api { .. }) => {
            let (users, _) = client.scim_list_as::<Value>("Users").await?;
            Ok(users.into_iter().find(|user| same_email(user)))
        }
        Err(error) => Err(error),
    }
}

/// A person's account with its roles and kind: SCIM's user, then `users.info` for what
/// SCIM does not say (primary owner, bot), so a decision about one account has the facts
/// the full sync's listings give. `None` when SCIM has no account with that email.
pub async fn find_account(
    client: &SlackClient,
    email: &str,
) -> Result<Option<LiveUser>, SlackError> {
    let Some(resource) = scim_user_by_email(client, email).await? else {
        return Ok(None);
    };
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let info = client
        .web_read(Credential::Admin, "users.info", &[("user", id.to_string())])
        .await?;
    Ok(Some(super::reader::scim_user(&resource, info.get("user"))))
}

/// `text` as a SCIM filter string literal (RFC 7644 takes JSON's string form).
fn scim_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn url_encode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// `admin.users.session.reset`: signs a person out everywhere.
pub async fn reset_sessions(client: &SlackClient, user_id: &str) -> Result<(), SlackError> {
    client
        .web_write(
            Credential::Admin,
            "admin.users.session.reset",
            &[("user_id", user_id.to_string())],
        )
        .await
        .map(|_| ())
}

/// The most people one `admin.users.session.resetBulk` call takes.
pub const RESET_BULK_MAX: usize = 1000;

/// `admin.users.session.resetBulk`: enqueues a job that signs up to [`RESET_BULK_MAX`]
/// people out everywhere. `ok` means enqueued, not done: read the sessions back.
pub async fn reset_sessions_bulk(
    client: &SlackClient,
    user_ids: &[String],
) -> Result<(), SlackError> {
    client
        .web_write(
            Credential::Admin,
            "admin.users.session.resetBulk",
            &[("user_ids", user_ids.join(","))],
        )
        .await
        .map(|_| ())
}

/// Every person with an active session anywhere in the org (`admin.users.session.list`
/// without a user: 1,000 sessions a page), as Slack ids. With the pages read.
pub async fn people_with_sessions(
    client: &SlackClient,
) -> Result<(std::collections::HashSet<String>, u64), SlackError> {
    #[derive(serde::Deserialize)]
    struct Session {
        user_id: String,
    }
    let (sessions, pages) = client
        .web_paginate_as::<Session>(
            Credential::Admin,
            "admin.users.session.list",
            &[("limit", "1000".to_string())],
            "active_sessions",
        )
        .await?;
    Ok((sessions.into_iter().map(|s| s.user_id).collect(), pages))
}

/// `admin.users.session.list`: whether a person still has an active session in any of
/// `teams`. Slack answers `no_active_sessions` when there is none.
pub async fn has_sessions(
    client: &SlackClient,
    user_id: &str,
    teams: &[String],
) -> Result<bool, SlackError> {
    for team in teams {
        let reply = client
            .web_read(
                Credential::Admin,
                "admin.users.session.list",
                &[("user_id", user_id.to_string()), ("team_id", team.clone())],
            )
            .await;
        match reply {
            Ok(body) => {
                let active = body
                    .get("active_sessions")
                    .and_then(Value::as_array)
                    .is_some_and(|s| !s.is_empty());
                if active {
                    return Ok(true);
                }
            }
            Err(SlackError::Api { error, .. }) if error == "no_active_sessions" => {}
            Err(error) => return Err(error),
        }
    }
    Ok(false)
}

/// `admin.users.assign`: adds an org member to a workspace.
pub async fn assign_workspace(
    client: &SlackClient,
    user_id: &str,
    team_id: &str,
) -> Result<(), SlackError> {
    let args = [
        ("team_id", team_id.to_string()),
        ("user_id", user_id.to_string()),
    ];
    match client
        .web_write(Credential::Admin, "admin.users.assign", &args)
        .await
    {
        Err(SlackError::Api { error, .. }) if error == "user_already_team_member" => Ok(()),
        other => other.map(|_| ()),
    }
}

/// `admin.users.setAdmin` or `admin.users.setOwner`.
pub async fn set_role(
    client: &SlackClient,
    team_id: &str,
    user_id: &str,
    role: Role,
) -> Result<(), SlackError> {
    let method = match role {
        Role::Admin => "admin.users.setAdmin",
        Role::Owner => "admin.users.setOwner",
    };
    let args = [
        ("team_id", team_id.to_string()),
        ("user_id", user_id.to_string()),
    ];
    client
        .web_write(Credential::Admin, method, &args)
        .await
        .map(|_| ())
}

/// Whether an account holds a role (read back with `users.info`).
pub async fn has_role(
    client: &SlackClient,
    team_id: &str,
    user_id: &str,
    role: Role,
) -> Result<bool, SlackError> {
    let body = client
        .web_read(
            Credential::Admin,
            "users.info",
            &[
                ("user", user_id.to_string()),
                ("team_id", team_id.to_string()),
            ],
        )
        .await?;
    let flag = match role {
        Role::Admin => "/user/is_admin",
        Role::Owner => "/user/is_owner",
    };
    Ok(body.pointer(flag).and_then(Value::as_bool).unwrap_or(false))
}

/// Whether an account belongs to a workspace (read back with `users.info`).
pub async fn in_workspace(
    client: &SlackClient,
    user_id: &str,
    team_id: &str,
) -> Result<bool, SlackError> {
    let reply = client
        .web_read(
            Credential::Admin,
            "users.info",
            &[
                ("user", user_id.to_string()),
                ("team_id", team_id.to_string()),
            ],
        )
        .await;
    match reply {
        Ok(body) => {
            let teams = body.pointer("/user/enterprise_user/teams");
            let home = body.pointer("/user/team_id").and_then(Value::as_str);
            Ok(home == Some(team_id)
                || teams
                    .and_then(Value::as_array)
                    .is_some_and(|t| t.iter().any(|v| v.as_str() == Some(team_id))))
        }
        Err(SlackError::Api { error, .. }) if error == "user_not_found" => Ok(false),
        Err(error) => Err(error),
    }
}

/// A usergroup as `usergroups.*` replies show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsergroupState {
    pub id: String,
    pub handle: String,
    pub name: String,
    pub description: String,
    pub disabled: bool,
    pub users: Vec<String>,
}

fn usergroup_state(value: &Value) -> UsergroupState {
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut users: Vec<String> = value
        .get("users")
        .and_then(Value::as_array)
        .map(|u| {
            u.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    users.sort();
    UsergroupState {
        id: text("id"),
        handle: text("handle"),
        name: text("name"),
        description: text("description"),
        disabled: value
            .get("date_delete")
            .and_then(Value::as_u64)
            .is_some_and(|d| d != 0),
        users,
    }
}

/// `usergroups.create`.
pub async fn create_usergroup(
    client: &SlackClient,
    team_id: &str,
    handle: &str,
    name: &str,
    description: &str,
    channels: &[String],
) -> Result<UsergroupState, SlackError> {
    let mut args = vec![
        ("team_id", team_id.to_string()),
        ("handle", handle.to_string()),
        ("name", name.to_string()),
        ("description", description.to_string()),
    ];
    if !channels.is_empty() {
        args.push(("channels", channels.join(",")));
    }
    let reply = client
        .web_write(Credential::Admin, "usergroups.create", &args)
        .await?;
    Ok(usergroup_state(
        reply.get("usergroup").unwrap_or(&Value::Null),
    ))
}

/// `usergroups.update` of name and/or description.
pub async fn update_usergroup(
    client: &SlackClient,
    team_id: &str,
    id: &str,
    fields: &[(UsergroupField, &str)],
) -> Result<UsergroupState, SlackError> {
    let mut args = vec![
        ("team_id", team_id.to_string()),
        ("usergroup", id.to_string()),
    ];
    for (field, value) in fields {
        let name = match field {
            UsergroupField::Name => "name",
            UsergroupField::Description => "description",
        };
        args.push((name, value.to_string()));
    }
    let reply = client
        .web_write(Credential::Admin, "usergroups.update", &args)
        .await?;
    Ok(usergroup_state(
        reply.get("usergroup").unwrap_or(&Value::Null),
    ))
}

/// `usergroups.enable` or `usergroups.disable`.
pub async fn set_usergroup_enabled(
    client: &SlackClient,
    team_id: &str,
    id: &str,
    enabled: bool,
) -> Result<UsergroupState, SlackError> {
    let method = if enabled {
        "usergroups.enable"
    } else {
        "usergroups.disable"
    };
    let args = [
        ("team_id", team_id.to_string()),
        ("usergroup", id.to_string()),
    ];
    let reply = client.web_write(Credential::Admin, method, &args).await?;
    Ok(usergroup_state(
        reply.get("usergroup").unwrap_or(&Value::Null),
    ))
}

/// `usergroups.users.update`: the whole member list.
pub async fn set_usergroup_members(
    client: &SlackClient,
    team_id: &str,
    id: &str,
    users: &[String],
) -> Result<(), SlackError> {
    let args = [
        ("team_id", team_id.to_string()),
        ("usergroup", id.to_string()),
        ("users", users.join(",")),
    ];
    client
        .web_write(Credential::Admin, "usergroups.users.update", &args)
        .await
        .map(|_| ())
}

/// Every usergroup of a workspace with members, disabled ones included (read back).
pub async fn list_usergroups(
    client: &SlackClient,
    team_id: &str,
) -> Result<Vec<UsergroupState>, SlackError> {
    let groups = super::reader::usergroups_of(client, team_id).await?;
    Ok(groups.iter().map(usergroup_state).collect())
}

/// `conversations.create`; returns the new channel's id.
pub async fn create_channel(
    client: &SlackClient,
    team_id: &str,
    name: &str,
    private: bool,
) -> Result<String, SlackError> {
    let args = [
        ("team_id", team_id.to_string()),
        ("name", name.to_string()),
        ("is_private", private.to_string()),
    ];
    let reply = client
        .web_write(Credential::Bot, "conversations.create", &args)
        .await?;
    Ok(reply
        .pointer("/channel/id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

/// The id of the channel with this name in a workspace, read back by listing.
pub async fn find_channel(
    client: &SlackClient,
    team_id: &str,
    name: &str,
) -> Result<Option<String>, SlackError> {
    let (channels, _) = client
        .web_paginate_as::<super::wire::Channel>(
            Credential::Bot,
            "conversations.list",
            &[
                ("team_id", team_id.to_string()),
                ("types", "public_channel,private_channel".into()),
                ("limit", "999".into()),
            ],
            "channels",
        )
        .await?;
    Ok(channels
        .into_iter()
        .find(|c| c.name.as_deref() == Some(name))
        .and_then(|c| c.id))
}

/// `conversations.invite` of at most 100 people; people already in it are not an error.
pub async fn invite(
    client: &SlackClient,
    channel: &str,
    users: &[String],
) -> Result<(), SlackError> {
    let args = [
        ("channel", channel.to_string()),
        ("users", users.join(",")),
        ("force", "true".into()),
    ];
    match client
        .web_write(Credential::Bot, "conversations.invite", &args)
        .await
    {
        Err(SlackError::Api { error, .. }) if error == "already_in_channel" => Ok(()),
        other => other.map(|_| ()),
    }
}

/// `conversations.kick` of one person; someone already gone is not an error.
pub async fn kick(client: &SlackClient, channel: &str, user: &str) -> Result<(), SlackError> {
    let args = [("channel", channel.to_string()), ("user", user.to_string())];
    match client
        .web_write(Credential::Bot, "conversations.kick", &args)
        .await
    {
        Err(SlackError::Api { error, .. }) if error == "not_in_channel" => Ok(()),
        other => other.map(|_| ()),
    }
}

/// A channel's members (read back).
pub async fn channel_members(
    client: &SlackClient,
    channel: &str,
) -> Result<Vec<String>, SlackError> {
    let (members, _) = client
        .web_paginate_as::<String>(
            Credential::Bot,
            "conversations.members",
            &[("channel", channel.to_string()), ("limit", "1000".into())],
            "members",
        )
        .await?;
    Ok(members)
}

/// `chat.postMessage` with a text fallback and Block Kit blocks (bot token).
pub async fn post_message(
    client: &SlackClient,
    team_id: &str,
    channel: &str,
    text: &str,
    blocks: &Value,
) -> Result<(), SlackError> {
    let args = [
        ("team_id", team_id.to_string()),
        ("channel", channel.to_string()),
        ("text", text.to_string()),
        ("blocks", blocks.to_string()),
    ];
    client
        .web_write(Credential::Bot, "chat.postMessage", &args)
        .await
        .map(|_| ())
}
