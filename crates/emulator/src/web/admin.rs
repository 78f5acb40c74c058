//! The `admin.*` methods (Enterprise Grid), and `team.integrationLogs`.

use super::*;

pub(super) fn admin_users_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let team = args.get("team_id");
    let want_active = args
        .get("is_active")
        .is_none_or(|v| v == "true" || v == "1");
    let candidates: Vec<&crate::world::User> = world
        .users
        .iter()
        .filter(|u| team.is_none_or(|t| u.workspaces.iter().any(|w| w == t)))
        .collect();
    let (chosen, next) = page(world, &candidates, args, 100, 1000, |u| {
        u.active == want_active
    })?;
    let objects: Vec<Value> = chosen
        .into_iter()
        .map(|u| {
            json!({
                "id": u.id,
                "email": u.email,
                "is_admin": u.admin,
                "is_owner": u.owner,
                "is_primary_owner": u.primary_owner,
                "is_restricted": u.guest.is_some(),
                "is_ultra_restricted": u.guest == Some(Guest::Single),
                "is_bot": u.bot,
                "username": u.user_name,
                "full_name": format!("{} {}", u.given_name, u.family_name).trim(),
                "is_active": u.active,
                "date_created": u.created,
                "deactivated_ts": if u.active { 0 } else { u.updated },
                "expiration_ts": 0,
                "workspaces": u.workspaces,
                "has_2fa": true,
                "has_sso": true,
            })
        })
        .collect();
    ok(vec![
        ("users", json!(objects)),
        ("response_metadata", metadata(next)),
    ])
}

pub(super) fn admin_target<'a>(
    world: &'a World,
    args: &Args,
) -> Result<(String, &'a crate::world::User), ApiError> {
    let team = args.required("team_id")?.to_string();
    if !world.workspaces.iter().any(|w| w.id == team) {
        return Err(ApiError::new("team_not_found"));
    }
    let user = world
        .user(args.required("user_id")?)
        .ok_or_else(|| ApiError::new("user_not_found"))?;
    Ok((team, user))
}

pub(super) fn admin_users_assign(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let (team, user) = admin_target(world, args)?;
    if user.bot {
        return Err(ApiError::new("user_is_bot"));
    }
    if !user.active {
        return Err(ApiError::new("invited_user_not_reactivated"));
    }
    if user.workspaces.contains(&team) {
        return Err(ApiError::new("user_already_team_member"));
    }
    let id = user.id.clone();
    world.join_workspace(&id, &team, caller.now);
    ok(Vec::new())
}

/// A workspace role `admin.users.set*` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Regular,
    Admin,
    Owner,
}

/// `admin.users.setAdmin`, `setOwner`, `setRegular`: the primary owner cannot be changed;
/// bots, guests and deactivated people cannot hold a role.
pub(super) fn admin_users_set_role(
    world: &mut World,
    caller: &Caller,
    args: &Args,
    role: Role,
) -> Reply {
    require_enterprise_admin(world, caller)?;
    let (team, user) = admin_target(world, args)?;
    if user.primary_owner {
        return Err(ApiError::new("cannot_modify_primary_owner"));
    }
    if user.bot || user.guest.is_some() || !user.active {
        return Err(ApiError::new("invalid_role_for_user"));
    }
    if !user.workspaces.contains(&team) {
        return Err(ApiError::new("user_not_found"));
    }
    let id = user.id.clone();
    let user = world.user_mut(&id).expect("found above");
    user.admin = role != Role::Regular;
    user.owner = role == Role::Owner;
    user.updated = caller.now;
    world.note(Change::UserChanged { id });
    ok(Vec::new())
}

pub(super) fn admin_users_remove(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let (team, user) = admin_target(world, args)?;
    if user.primary_owner {
        return Err(ApiError::new("cannot_modify_primary_owner"));
    }
    if !user.workspaces.contains(&team) {
        return Err(ApiError::new("failed_to_remove_user_from_workspace"));
    }
    let id = user.id.clone();
    let user = world.user_mut(&id).expect("found above");
    user.workspaces.retain(|w| *w != team);
    user.updated = caller.now;
    world.note(Change::UserChanged { id: id.clone() });
    world.leave_usergroups_where(&id, caller.now, |w| w == team);
    world.leave_channels_where(&id, |w| w == team);
    ok(Vec::new())
}

/// Emulated seconds between `admin.users.session.resetBulk` answering `ok` and its job
/// signing the people out.
pub const BULK_RESET_DELAY: u64 = 3;

pub(super) fn admin_session_reset(
    world: &mut World,
    caller: &Caller,
    args: &Args,
    bulk: bool,
) -> Reply {
    require_enterprise_admin(world, caller)?;
    let ids = if bulk {
        let ids = args.list("user_ids");
        if ids.is_empty() {
            return Err(ApiError::new("invalid_arguments"));
        }
        if ids.len() > 1000 {
            return Err(ApiError::new("invalid_arguments"));
        }
        ids
    } else {
        vec![args.required("user_id")?.to_string()]
    };
    let mut failed = Vec::new();
    for id in &ids {
        match world.user(id) {
            None => failed.push(id.clone()),
            Some(user) if user.bot => {
                if bulk {
                    failed.push(id.clone());
                } else {
                    return Err(ApiError::new("cannot_reset_bot"));
                }
            }
            Some(user) if user.primary_owner => {
                if bulk {
                    failed.push(id.clone());
                } else {
                    return Err(ApiError::new("cannot_reset_primary_owner"));
                }
            }
            Some(_) => {}
        }
    }
    if !bulk && !failed.is_empty() {
        return Err(ApiError::new("user_not_found"));
    }
    if bulk && !failed.is_empty() {
        return Err(ApiError::new("failed_for_some_users").with("invalid_user_ids", json!(failed)));
    }
    let mobile_only = args.flag("mobile_only");
    let web_only = args.flag("web_only");
    // `resetBulk` is asynchronous on Slack: `ok` means the job was enqueued. The emulator
    // runs the job a few emulated seconds later; `admin.users.session.list` shows the
    // sessions until then.
    let at = if bulk {
        caller.now + BULK_RESET_DELAY
    } else {
        caller.now
    };
    for id in ids {
        world.session_resets.push(crate::world::SessionReset {
            user: id,
            at,
            mobile_only,
            web_only,
        });
    }
    ok(Vec::new())
}

/// `admin.users.session.list`: the sessions still active. Every person has one session
/// per workspace until a full reset (not `mobile_only`, not `web_only`) signs them out;
/// deactivation alone does not (Slack's documentation leaves it open, so the emulator
/// takes the case that needs the reset). `user_id` and `team_id` come together or not at
/// all.
pub(super) fn admin_session_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let (user, team) = match (args.get("user_id"), args.get("team_id")) {
        (Some(_), None) => return Err(ApiError::new("missing_team")),
        (None, Some(_)) => return Err(ApiError::new("missing_user")),
        (user, team) => (user, team),
    };
    if let Some(id) = user {
        match world.user(id) {
            None => return Err(ApiError::new("user_not_found")),
            Some(u) if u.bot => return Err(ApiError::new("bots_not_allowed")),
            Some(_) => {}
        }
    }
    let signed_out: std::collections::HashSet<&str> = world
        .session_resets
        .iter()
        .filter(|r| r.at <= caller.now && !r.mobile_only && !r.web_only)
        .map(|r| r.user.as_str())
        .collect();
    let signed_out = |id: &str| signed_out.contains(id);
    let sessions: Vec<Value> = world
        .users
        .iter()
        .filter(|u| !u.bot && user.is_none_or(|id| u.id == id) && !signed_out(&u.id))
        .flat_map(|u| {
            u.workspaces
                .iter()
                .filter(|w| team.is_none_or(|t| t == w.as_str()))
                .map(|w| {
                    json!({
                        "user_id": u.id,
                        "team_id": w,
                        "session_id": format!("S{}{}", u.id, w),
                        "created": {"device_hardware": "computer", "os": "Mac", "slack_client_version": "4.41", "ip": "192.0.2.10"},
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if user.is_some() && sessions.is_empty() {
        return Err(ApiError::new("no_active_sessions"));
    }
    let (on_page, next) = page(world, &sessions, args, 100, 1000, |_| true)?;
    ok(vec![
        ("active_sessions", json!(on_page)),
        ("response_metadata", metadata(next)),
    ])
}

pub(super) fn idp_group_index(world: &World, args: &Args) -> Result<usize, ApiError> {
    let id = args.required("usergroup_id")?;
    world
        .idp_groups
        .iter()
        .position(|g| g.id == id)
        .ok_or_else(|| ApiError::new("usergroup_not_found"))
}

pub(super) fn admin_usergroups_channels(
    world: &mut World,
    caller: &Caller,
    args: &Args,
    add: bool,
) -> Reply {
    require_enterprise_admin(world, caller)?;
    let index = idp_group_index(world, args)?;
    let channel_ids = args.list("channel_ids");
    if channel_ids.is_empty() {
        return Err(ApiError::new("invalid_arguments"));
    }
    if channel_ids.len() > 100 {
        return Err(ApiError::new("invalid_channels_limit"));
    }
    let mut invalid = Vec::new();
    let mut valid = Vec::new();
    for id in channel_ids {
        match world.channel(&id) {
            Some(channel) if !channel.archived => valid.push((id, channel.workspace.clone())),
            _ => invalid.push(id),
        }
    }
    let group = &mut world.idp_groups[index];
    if add {
        if let Some((_, team)) = valid
            .iter()
            .find(|(_, team)| !group.workspaces.contains(team))
        {
            let _ = team;
            return Err(ApiError::new("usergroup_not_linked_to_team"));
        }
        for (id, _) in &valid {
            if !group.channels.contains(id) {
                group.channels.push(id.clone());
            }
        }
        // Linking a channel adds the group's members to it.
        let members = group.members.clone();
        for (id, _) in &valid {
            for member in &members {
                world.join_channel(id, member, None);
            }
        }
    } else {
        group
            .channels
            .retain(|c| !valid.iter().any(|(id, _)| id == c));
    }
    let mut reply = Vec::new();
    if !invalid.is_empty() {
        reply.push(("invalid_channels", json!(invalid)));
    }
    ok(reply)
}

pub(super) fn admin_usergroups_list_channels(world: &World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let group = &world.idp_groups[idp_group_index(world, args)?];
    if let Some(team) = args.get("team_id")
        && !world.workspaces.iter().any(|w| w.id == team)
    {
        return Err(ApiError::new("team_not_found"));
    }
    let with_count = args.flag("include_num_members");
    let channels: Vec<Value> = group
        .channels
        .iter()
        .filter_map(|id| world.channel(id))
        .filter(|c| args.get("team_id").is_none_or(|t| t == c.workspace))
        .map(|c| {
            let mut object =
                json!({"id": c.id, "name": c.name, "team_id": c.workspace, "is_redacted": false});
            if with_count {
                object["num_members"] = json!(c.members.len());
            }
            object
        })
        .collect();
    ok(vec![("channels", json!(channels))])
}

pub(super) fn admin_usergroups_add_teams(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let index = idp_group_index(world, args)?;
    let teams = args.list("team_ids");
    if teams.is_empty() {
        return Err(ApiError::new("no_team_ids_given"));
    }
    if teams
        .iter()
        .any(|t| !world.workspaces.iter().any(|w| w.id == *t))
    {
        return Err(ApiError::new("invalid_team_ids"));
    }
    let auto_provision = args.flag("auto_provision");
    let group = &mut world.idp_groups[index];
    for team in &teams {
        if !group.workspaces.contains(team) {
            group.workspaces.push(team.clone());
        }
    }
    if auto_provision {
        let members = group.members.clone();
        for member in members {
            for team in &teams {
                world.join_workspace(&member, team, caller.now);
            }
        }
    }
    ok(Vec::new())
}

pub(super) fn admin_conversations_invite(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let channel_id = args.required("channel_id")?.to_string();
    let channel = world
        .channel(&channel_id)
        .ok_or_else(|| ApiError::new("channel_not_found"))?
        .clone();
    if channel.general {
        return Err(ApiError::new("default_org_wide_channel"));
    }
    let users = args.list("user_ids");
    if users.is_empty() {
        return Err(ApiError::new("invalid_arguments"));
    }
    let mut failed = Vec::new();
    let mut accepted = Vec::new();
    for id in users {
        match world.user(&id) {
            Some(user) if user.active && user.workspaces.contains(&channel.workspace) => {
                if !channel.members.contains(&id) {
                    accepted.push(id);
                }
            }
            _ => failed.push(id),
        }
    }
    for user in &accepted {
        world.join_channel(&channel_id, user, Some(&caller.token.user));
    }
    if failed.is_empty() {
        ok(Vec::new())
    } else {
        Err(ApiError::new("failed_for_some_users").with("failed_user_ids", json!(failed)))
    }
}

pub(super) fn team_integration_logs(world: &World, caller: &Caller, args: &Args) -> Reply {
    let team = if caller.token.org_level {
        Some(
            args.get("team_id")
                .ok_or_else(|| ApiError::new(MISSING_ARGUMENT))?
                .to_string(),
        )
    } else {
        caller.token.workspace.clone()
    };
    let count: usize = args
        .get("count")
        .map_or(Ok(100), str::parse)
        .map_err(|_| ApiError::new("invalid_arguments"))?;
    let page_number: usize = args
        .get("page")
        .map_or(Ok(1), str::parse)
        .map_err(|_| ApiError::new("invalid_arguments"))?;
    let count = count.clamp(1, 1000);
    let page_number = page_number.max(1);
    let installs = world.apps.iter().map(|app| crate::world::IntegrationLog {
        app_id: app.id.clone(),
        // Slack's example shows the app's name here ("app_type": "Johnny App").
        app_type: app.name.clone(),
        user_id: app.installed_by.clone(),
        user_name: world
            .user(&app.installed_by)
            .map(|u| u.user_name.clone())
            .unwrap_or_default(),
        date: app.date,
        change_type: "added".into(),
        scope: app.scopes.join(","),
        workspace: app.workspace.clone(),
    });
    let mut logs: Vec<crate::world::IntegrationLog> = installs
        .chain(world.integration_logs.iter().cloned())
        .filter(|log| team.as_ref().is_none_or(|t| *t == log.workspace))
        .filter(|log| args.get("user").is_none_or(|u| u == log.user_id))
        .filter(|log| args.get("app_id").is_none_or(|a| a == log.app_id))
        .filter(|log| args.get("change_type").is_none_or(|c| c == log.change_type))
        .collect();
    logs.sort_by_key(|log| std::cmp::Reverse(log.date));
    let total = logs.len();
    let pages = total.div_ceil(count).max(1);
    let chosen: Vec<Value> = logs
        .into_iter()
        .skip((page_number - 1) * count)
        .take(count)
        .map(|log| {
            json!({
                "app_id": log.app_id,
                "app_type": log.app_type,
                "user_id": log.user_id,
                "user_name": log.user_name,
                "date": log.date.to_string(),
                "change_type": log.change_type,
                "scope": log.scope,
            })
        })
        .collect();
    ok(vec![
        ("logs", json!(chosen)),
        (
            "paging",
            json!({"count": count, "total": total, "page": page_number, "pages": pages}),
        ),
    ])
}
