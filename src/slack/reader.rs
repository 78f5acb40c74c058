//! Reading live Slack into one [`Live`] snapshot with the fewest calls the APIs allow.
//!
//! | what | call | pages |
//! |---|---|---|
//! | people, active flag, names | SCIM `GET /Users` | total / 1,000 |
//! | IdP groups (Grid) | SCIM `GET /Groups` | total / 1,000 |
//! | roles, guests, bots, workspaces | `admin.users.list` (Grid) or `users.list` per workspace | cursor pages |
//! | usergroups with members | `usergroups.list include_users` per workspace | 1 |
//! | channels | `conversations.list` per workspace | cursor pages |
//! | channel members | `conversations.members`, managed channels only | cursor pages |
//!
//! `usergroups.users.list` is called only for a group whose `users` list is shorter than
//! its `user_count`. Every listing is read to its end or the whole read fails: a failed
//! or partial read is never taken as "nobody is there".

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::client::{Credential, SlackClient, SlackError};
use super::wire;
use crate::model::live::{Live, LiveApp, LiveChannel, LiveIdpGroup, LiveUser, LiveUsergroup};

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct ReadScope {
    /// Team ids of the workspaces the config names.
    pub workspaces: Vec<String>,
    /// `(team id, channel name)` of the channels whose members are read.
    pub managed_channels: BTreeSet<(String, String)>,
    /// Enterprise Grid: read IdP groups and use the admin API for roles.
    pub grid: bool,
    /// Globs (`*`, `?`) of further channel names whose members are read (`import`);
    /// archived channels are never read.
    pub channels_matching: Vec<String>,
}

/// How the read went, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadReport {
    /// Each usergroup's `date_update` as read: the link the mirror chains
    /// `subteam_members_changed` deltas from.
    pub usergroup_updates: std::collections::BTreeMap<String, i64>,
    /// Calls the listings needed: one per page Slack handed out.
    pub minimum_calls: u64,
    /// Calls made, retries and 429s included.
    pub calls: u64,
    pub rate_limited: u64,
    pub retries: u64,
}

/// Reads the live state, failing whole if any part fails: the listings at once, then the
/// members of the managed channels that exist.
pub async fn read_live(
    client: &SlackClient,
    scope: &ReadScope,
) -> Result<(Live, ReadReport), SlackError> {
    let before = client.counts();
    let idp_groups = async {
        if scope.grid {
            client.scim_list_as::<wire::ScimGroup>("Groups").await
        } else {
            Ok((Vec::new(), 0))
        }
    };
    let (scim_users, admin_flags, idp_groups, usergroups, channels) = tokio::try_join!(
        client.scim_list_as::<wire::ScimUser>("Users"),
        read_user_flags(client, scope),
        idp_groups,
        read_usergroups(client, &scope.workspaces),
        read_channels(client, &scope.workspaces),
    )?;
    let (members, member_pages) = read_channel_members(
        client,
        &scope.managed_channels,
        &scope.channels_matching,
        &channels.0,
    )
    .await?;
    let minimum =
        scim_users.1 + admin_flags.1 + idp_groups.1 + usergroups.1 + channels.1 + member_pages;

    let live = assemble(
        scim_users.0,
        admin_flags.0,
        idp_groups.0,
        &usergroups.0,
        channels.0,
        members,
    );
    let usergroup_updates = date_updates(&usergroups.0);
    let after = client.counts();
    let report = ReadReport {
        usergroup_updates,
        minimum_calls: minimum,
        calls: after.calls - before.calls,
        rate_limited: after.rate_limited - before.rate_limited,
        retries: after.retries - before.retries,
    };
    tracing::info!(
        calls = report.calls,
        minimum = report.minimum_calls,
        rate_limited = report.rate_limited,
        "read live Slack"
    );
    Ok((live, report))
}

/// Roles, guest kinds, bots and workspaces: `admin.users.list` on Grid, `users.list` per
/// workspace otherwise. With the pages read.
async fn read_user_flags(
    client: &SlackClient,
    scope: &ReadScope,
) -> Result<(Vec<wire::UserFlags>, u64), SlackError> {
    if scope.grid {
        return client
            .web_paginate_as::<wire::UserFlags>(
                Credential::Admin,
                "admin.users.list",
                &[("limit", "1000".into())],
                "users",
            )
            .await;
    }
    let mut all = Vec::new();
    let mut pages = 0;
    for team in &scope.workspaces {
        let (items, read) = client
            .web_paginate_as::<wire::UserFlags>(
                Credential::Admin,
                "users.list",
                &[("limit", "1000".into()), ("team_id", team.clone())],
                "members",
            )
            .await?;
        all.extend(items);
        pages += read;
    }
    Ok((all, pages))
}

/// Every usergroup of each workspace with its members (disabled ones too). A group whose
/// listed members fall short of its `user_count` is read in full. With the calls made.
async fn read_usergroups(
    client: &SlackClient,
    workspaces: &[String],
) -> Result<(Vec<Value>, u64), SlackError> {
    let mut all = Vec::new();
    let mut calls = 0;
    for team in workspaces {
        let groups = usergroups_of(client, team).await?;
        calls += 1;
        for mut group in groups {
            let listed = group
                .get("users")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let count = group
                .get("user_count")
                .and_then(Value::as_u64)
                .unwrap_or(listed as u64) as usize;
            if listed < count {
                // The listing truncated this group's members: read them in full.
                let args = [
                    ("usergroup", text(&group, "id")),
                    ("team_id", team.clone()),
                    ("include_disabled", "true".into()),
                ];
                let mut members = client
                    .web_read(Credential::Admin, "usergroups.users.list", &args)
                    .await?;
                calls += 1;
                group["users"] = members
                    .get_mut("users")
                    .map(Value::take)
                    .unwrap_or_default();
            }
            all.push(group);
        }
    }
    Ok((all, calls))
}

/// `usergroups.list` for one workspace: every usergroup, disabled ones too, with the
/// members it lists (which may be truncated: see `user_count`).
pub async fn usergroups_of(client: &SlackClient, team: &str) -> Result<Vec<Value>, SlackError> {
    let mut body = client
        .web_read(
            Credential::Admin,
            "usergroups.list",
            &[
                ("team_id", team.to_string()),
                ("include_users", "true".into()),
                ("include_disabled", "true".into()),
            ],
        )
        .await?;
    Ok(match body.get_mut("usergroups").map(Value::take) {
        Some(Value::Array(groups)) => groups,
        _ => Vec::new(),
    })
}

/// Every public and private channel of each workspace, with its team id. With the pages.
async fn read_channels(
    client: &SlackClient,
    workspaces: &[String],
) -> Result<(Vec<(String, wire::Channel)>, u64), SlackError> {
    let mut all = Vec::new();
    let mut pages = 0;
    for team in workspaces {
        let (items, read) = client
            .web_paginate_as::<wire::Channel>(
                Credential::Bot,
                "conversations.list",
                &[
                    ("team_id", team.clone()),
                    ("types", "public_channel,private_channel".into()),
                    ("limit", "999".into()),
                ],
                "channels",
            )
            .await?;
        all.extend(items.into_iter().map(|c| (team.clone(), c)));
        pages += read;
    }
    Ok((all, pages))
}

/// The members of the managed channels that exist, by channel id, read concurrently
/// within the client's concurrency limit. With the pages read.
async fn read_channel_members(
    client: &SlackClient,
    managed: &BTreeSet<(String, String)>,
    patterns: &[String],
    channels: &[(String, wire::Channel)],
) -> Result<(BTreeMap<String, Vec<String>>, u64), SlackError> {
    let wanted: Vec<String> = channels
        .iter()
        .filter(|(team, c)| {
            let name = c.name.clone().unwrap_or_default();
            let matching = !c.is_archived.unwrap_or(false)
                && patterns.iter().any(|p| crate::adopt::glob_match(p, &name));
            matching || managed.contains(&(team.clone(), name))
        })
        .map(|(_, c)| c.id.clone().unwrap_or_default())
        .collect();
    let member_reads = wanted.iter().map(|id| async move {
        let args = [("channel", id.clone()), ("limit", "1000".to_string())];
        client
            .web_paginate_as::<String>(Credential::Bot, "conversations.members", &args, "members")
            .await
    });
    let member_lists = futures_util::future::try_join_all(member_reads).await?;
    let mut members = BTreeMap::new();
    let mut pages = 0;
    for (id, (items, read)) in wanted.into_iter().zip(member_lists) {
        pages += read;
        members.insert(id, items);
    }
    Ok((members, pages))
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn ids(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A SCIM user resource as a [`LiveUser`], with the Web API's flags (`admin.users.list`
/// or `users.list`: roles, guest kind, bot, workspaces) when known. Fields of the wrong
/// type read as absent.
pub fn scim_user(resource: &Value, extra: Option<&Value>) -> LiveUser {
    use serde::Deserialize;
    let user = wire::ScimUser::deserialize(resource).unwrap_or_default();
    let flags = extra.map(|e| wire::UserFlags::deserialize(e).unwrap_or_default());
    wire::live_user(user, flags.as_ref())
}

/// Builds the snapshot from the listings. Pure, so it is tested without a server.
/// Each usergroup's `date_update` by id, as `usergroups.list` gives them.
fn date_updates(groups: &[Value]) -> BTreeMap<String, i64> {
    groups
        .iter()
        .filter_map(|g| {
            Some((
                g.get("id")?.as_str()?.to_string(),
                g.get("date_update")?.as_i64()?,
            ))
        })
        .collect()
}

/// A usergroup as `usergroups.list` gives it.
fn live_usergroup(g: &Value) -> LiveUsergroup {
    let prefs = g.get("prefs");
    let mut channels = ids(prefs.and_then(|p| p.get("channels")));
    channels.extend(ids(prefs.and_then(|p| p.get("groups"))));
    LiveUsergroup {
        id: text(g, "id"),
        workspace: text(g, "team_id"),
        handle: text(g, "handle"),
        name: text(g, "name"),
        description: text(g, "description"),
        members: ids(g.get("users")),
        channels,
        disabled: g.get("date_delete").and_then(Value::as_u64).unwrap_or(0) != 0,
    }
}

/// Every usergroup of one workspace, with its members and Slack's `date_update` by id:
/// one `usergroups.list` (and `usergroups.users.list` for a group it cut short).
pub async fn read_usergroups_in(
    client: &SlackClient,
    team: &str,
) -> Result<(Vec<LiveUsergroup>, BTreeMap<String, i64>), SlackError> {
    let (groups, _) = read_usergroups(client, &[team.to_string()]).await?;
    let updates = date_updates(&groups);
    Ok((groups.iter().map(live_usergroup).collect(), updates))
}

/// One channel as it is now: `conversations.info`, and its members when `with_members`
/// (`conversations.members`, paged). `None` when Slack no longer has it.
pub async fn read_channel(
    client: &SlackClient,
    id: &str,
    with_members: bool,
) -> Result<Option<LiveChannel>, SlackError> {
    let info = client
        .web_read(
            Credential::Bot,
            "conversations.info",
            &[("channel", id.to_string())],
        )
        .await;
    let info = match info {
        Ok(info) => info,
        Err(SlackError::Api { error, .. }) if error == "channel_not_found" => return Ok(None),
        Err(error) => return Err(error),
    };
    let object = info.get("channel").cloned().unwrap_or_default();
    let team = text(&object, "context_team_id");
    let channel: wire::Channel =
        serde_json::from_value(object).map_err(|e| SlackError::Protocol {
            call: "conversations.info".into(),
            message: e.to_string(),
        })?;
    let members = if with_members {
        let args = [("channel", id.to_string()), ("limit", "1000".to_string())];
        let (members, _) = client
            .web_paginate_as::<String>(Credential::Bot, "conversations.members", &args, "members")
            .await?;
        Some(members)
    } else {
        None
    };
    Ok(Some(wire::live_channel(team, channel, members)))
}

/// One person as they are now: their SCIM resource and their flags from `users.info`
/// (roles, guest kind, bot, workspaces). `None` when Slack no longer has them.
pub async fn read_user(client: &SlackClient, id: &str) -> Result<Option<LiveUser>, SlackError> {
    let resource = match client.scim_get(&format!("Users/{id}")).await {
        Ok(resource) => resource,
        // Slack's SCIM answers 404 with `no_such_user`.
        Err(SlackError::Api { error, .. }) if error == "no_such_user" => return Ok(None),
        Err(error) => return Err(error),
    };
    let protocol = |call: &str, e: serde_json::Error| SlackError::Protocol {
        call: call.into(),
        message: e.to_string(),
    };
    let resource: wire::ScimUser =
        serde_json::from_value(resource).map_err(|e| protocol("SCIM GET /Users", e))?;
    let info = client
        .web_read(Credential::Bot, "users.info", &[("user", id.to_string())])
        .await?;
    let object = info.get("user").cloned().unwrap_or_default();
    let mut flags: wire::UserFlags =
        serde_json::from_value(object.clone()).map_err(|e| protocol("users.info", e))?;
    if let Some(teams) = object
        .pointer("/enterprise_user/teams")
        .and_then(Value::as_array)
    {
        flags.workspaces = Some(ids(Some(&Value::Array(teams.clone()))));
    }
    Ok(Some(wire::live_user(resource, Some(&flags))))
}

/// The org's IdP groups (Enterprise Grid's SCIM groups).
pub async fn read_idp_groups(client: &SlackClient) -> Result<Vec<LiveIdpGroup>, SlackError> {
    let (groups, _) = client.scim_list_as::<wire::ScimGroup>("Groups").await?;
    let mut groups: Vec<LiveIdpGroup> = groups.into_iter().map(wire::live_idp_group).collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(groups)
}

fn assemble(
    scim_users: Vec<wire::ScimUser>,
    flags: Vec<wire::UserFlags>,
    idp_groups: Vec<wire::ScimGroup>,
    usergroups: &[Value],
    channels: Vec<(String, wire::Channel)>,
    mut members: BTreeMap<String, Vec<String>>,
) -> Live {
    let flags: std::collections::HashMap<String, wire::UserFlags> = flags
        .into_iter()
        .map(|f| (f.id.clone().unwrap_or_default(), f))
        .collect();
    let mut users: Vec<LiveUser> = scim_users
        .into_iter()
        .map(|resource| {
            let extra = resource.id.as_deref().and_then(|id| flags.get(id));
            wire::live_user(resource, extra)
        })
        .collect();
    users.sort_by(|a, b| a.id.cmp(&b.id));

    let mut usergroups: Vec<LiveUsergroup> = usergroups.iter().map(live_usergroup).collect();
    usergroups.sort_by(|a, b| (&a.workspace, &a.handle).cmp(&(&b.workspace, &b.handle)));

    let mut channels: Vec<LiveChannel> = channels
        .into_iter()
        .map(|(team, c)| {
            let read = c.id.as_deref().and_then(|id| members.remove(id));
            wire::live_channel(team, c, read)
        })
        .collect();
    channels.sort_by(|a, b| (&a.workspace, &a.name).cmp(&(&b.workspace, &b.name)));

    let mut idp_groups: Vec<LiveIdpGroup> =
        idp_groups.into_iter().map(wire::live_idp_group).collect();
    idp_groups.sort_by(|a, b| a.name.cmp(&b.name));
    Live {
        users,
        usergroups,
        channels,
        idp_groups,
        apps: Default::default(),
    }
}

impl ReadScope {
    /// What a config repository needs read: its workspaces, and the members of every
    /// channel it manages or names as a usergroup's default channel.
    pub fn from_repository(repository: &crate::config::Repository) -> ReadScope {
        let config = &repository.config.value;
        let managed_channels = repository.managed_channels();
        ReadScope {
            workspaces: config
                .slack
                .workspaces
                .values()
                .map(|t| t.as_str().to_string())
                .collect(),
            managed_channels,
            grid: config.slack.plan == crate::config::types::SlackPlan::EnterpriseGrid,
            channels_matching: Vec::new(),
        }
    }
}

/// The apps each person installed that are still installed, from `team.integrationLogs`
/// (Tier 2, 20 calls a minute, the legacy `admin` scope).
///
/// Per workspace, the first page of the whole log says how long it is. When the log has no
/// more pages than there are leavers in that workspace it is read whole (one call per
/// 1,000 entries); otherwise each person's entries are asked for on their own (a call
/// each, unless one person has over 1,000 entries), on top of that first page. All
/// entries read go into one log: an app counts as installed when its latest entry is
/// `added`, `enabled` or `updated`, and its installer is the person of that entry, so an
/// app someone else removed since is not counted.
pub async fn read_installed_apps(
    client: &SlackClient,
    people: &[(String, Vec<String>)],
) -> Result<Vec<LiveApp>, SlackError> {
    let mut leavers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (user, workspaces) in people {
        for team in workspaces {
            leavers.entry(team).or_default().insert(user);
        }
    }
    let mut apps = Vec::new();
    for (team, users) in leavers {
        let mut log = AppLog::default();
        let pages = read_log_page(client, team, None, 1, &mut log).await?;
        if pages <= users.len() as u64 {
            for page in 2..=pages {
                read_log_page(client, team, None, page, &mut log).await?;
            }
        } else {
            for user in &users {
                let mut page = 1;
                while page < read_log_page(client, team, Some(user), page, &mut log).await? {
                    page += 1;
                }
            }
        }
        apps.extend(
            log.latest
                .into_iter()
                .filter(|(_, entry)| entry.installed && users.contains(entry.user.as_str()))
                .map(|(id, entry)| LiveApp {
                    id,
                    name: entry.name,
                    workspace: team.to_string(),
                    installed_by: entry.user,
                }),
        );
    }
    apps.sort();
    Ok(apps)
}

/// The latest integration-log entry per app.
#[derive(Default)]
struct AppLog {
    latest: BTreeMap<String, LogEntry>,
}

struct LogEntry {
    date: u64,
    installed: bool,
    name: String,
    user: String,
}

/// Reads one page of a workspace's integration log (optionally one person's) into `log`;
/// returns the number of pages.
async fn read_log_page(
    client: &SlackClient,
    team: &str,
    user: Option<&str>,
    page: u64,
    log: &mut AppLog,
) -> Result<u64, SlackError> {
    let mut args = vec![
        ("team_id", team.to_string()),
        ("count", "1000".into()),
        ("page", page.to_string()),
    ];
    if let Some(user) = user {
        args.push(("user", user.to_string()));
    }
    let body = client
        .web_read(Credential::Admin, "team.integrationLogs", &args)
        .await?;
    for entry in body
        .get("logs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = [text(entry, "app_id"), text(entry, "service_id")]
            .into_iter()
            .find(|s| !s.is_empty())
        else {
            continue;
        };
        let name = [text(entry, "app_type"), text(entry, "service_type")]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| id.clone());
        // Slack sends the date as a string of seconds.
        let date = entry
            .get("date")
            .and_then(|d| d.as_u64().or_else(|| d.as_str()?.parse().ok()))
            .unwrap_or(0);
        let installed = matches!(
            text(entry, "change_type").as_str(),
            "added" | "enabled" | "updated"
        );
        // Slack lists the newest first; on a tie the first seen stays.
        let newer = log.latest.get(&id).is_none_or(|seen| date > seen.date);
        if newer {
            log.latest.insert(
                id,
                LogEntry {
                    date,
                    installed,
                    name,
                    user: text(entry, "user_id"),
                },
            );
        }
    }
    Ok(body
        .pointer("/paging/pages")
        .and_then(Value::as_u64)
        .unwrap_or(1))
}
