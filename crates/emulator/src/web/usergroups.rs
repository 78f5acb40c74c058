//! The usergroups' methods.

use super::*;

/// What an org-level token's call without `team_id` answers, as the method reference
/// names it per method.
pub(super) const TARGET_TEAM: &str = "target_team_must_be_specified_in_org_context";
pub(super) const MISSING_ARGUMENT: &str = "missing_argument";

pub(super) fn usergroups_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    let team = workspace(world, caller, args, MISSING_ARGUMENT)?;
    let include_disabled = args.flag("include_disabled");
    let include_users = args.flag("include_users");
    let groups: Vec<Value> = world
        .usergroups
        .iter()
        .filter(|g| g.workspace == team && (include_disabled || !g.disabled))
        .map(|g| usergroup_object(world, g, include_users))
        .collect();
    ok(vec![("usergroups", json!(groups))])
}

pub(super) fn may_edit_usergroups(world: &World, caller: &Caller) -> Result<(), ApiError> {
    if world.settings.bots_may_edit_usergroups {
        return Ok(());
    }
    let admin = world
        .user(&caller.token.user)
        .is_some_and(|u| u.admin || u.owner || u.primary_owner);
    if caller.token.kind == TokenKind::User && admin {
        Ok(())
    } else {
        Err(ApiError::new("permission_denied"))
    }
}

pub(super) fn valid_handle(handle: &str) -> bool {
    !handle.is_empty()
        && handle.chars().count() <= 21
        && handle
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// Checks a name and handle against every group of the workspace, disabled ones included
/// (a disabled group still holds its name and handle).
pub(super) fn check_usergroup_names(
    world: &World,
    team: &str,
    except: Option<&str>,
    name: Option<&str>,
    handle: Option<&str>,
) -> Result<(), ApiError> {
    let others = || {
        world
            .usergroups
            .iter()
            .filter(move |g| g.workspace == team && Some(g.id.as_str()) != except)
    };
    if let Some(name) = name {
        if name.chars().count() > 255 {
            return Err(ApiError::new("name_too_long"));
        }
        if others().any(|g| g.name.eq_ignore_ascii_case(name)) {
            return Err(ApiError::new("name_already_exists"));
        }
    }
    if let Some(handle) = handle {
        if !valid_handle(handle) {
            return Err(ApiError::new("bad_handle"));
        }
        if others().any(|g| g.handle == handle) {
            return Err(ApiError::new("handle_already_exists"));
        }
    }
    Ok(())
}

pub(super) fn check_channels(
    world: &World,
    team: &str,
    channels: &[String],
) -> Result<(), ApiError> {
    for id in channels {
        match world.channel(id) {
            Some(channel) if channel.workspace == team => {}
            _ => return Err(ApiError::new("invalid_channel_provided")),
        }
    }
    Ok(())
}

pub(super) fn usergroups_create(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let team = workspace(world, caller, args, TARGET_TEAM)?;
    may_edit_usergroups(world, caller)?;
    let name = args
        .get("name")
        .ok_or_else(|| ApiError::new("missing_subteam_name"))?;
    let handle = args.get("handle");
    let description = args.get("description").unwrap_or_default();
    if description.chars().count() > 140 {
        return Err(ApiError::new("description_too_long"));
    }
    check_usergroup_names(world, &team, None, Some(name), handle)?;
    let channels = args.list("channels");
    check_channels(world, &team, &channels)?;
    let id = world.mint_id('S');
    let group = Usergroup {
        id: id.clone(),
        workspace: team,
        handle: handle.unwrap_or(name).to_lowercase().replace(' ', "-"),
        name: name.to_string(),
        description: description.to_string(),
        users: Vec::new(),
        channels,
        disabled: false,
        created: caller.now,
        updated: caller.now,
        created_by: caller.token.user.clone(),
        updated_by: caller.token.user.clone(),
    };
    world.usergroups.push(group);
    world.note(Change::SubteamCreated { id: id.clone() });
    reply_usergroup(world, &id, args)
}

pub(super) fn reply_usergroup(world: &World, id: &str, args: &Args) -> Reply {
    let group = world
        .usergroups
        .iter()
        .find(|g| g.id == id)
        .ok_or_else(|| ApiError::new("no_such_subteam"))?;
    let mut object = usergroup_object(world, group, true);
    if !args.flag("include_count")
        && let Some(map) = object.as_object_mut()
    {
        map.remove("user_count");
    }
    ok(vec![("usergroup", object)])
}

/// The usergroup a call names, checked to be in the caller's workspace. An org-level
/// token must name the workspace (`team_id`); without it the call fails with `missing`.
pub(super) fn own_usergroup<'a>(
    world: &'a World,
    caller: &Caller,
    args: &Args,
    missing: &str,
) -> Result<&'a Usergroup, ApiError> {
    let id = args.required("usergroup")?;
    let group = world
        .usergroups
        .iter()
        .find(|g| g.id == id)
        .ok_or_else(|| ApiError::new("no_such_subteam"))?;
    let team = if caller.token.org_level {
        args.get("team_id")
            .ok_or_else(|| ApiError::new(missing))?
            .to_string()
    } else {
        caller.token.workspace.clone().unwrap_or_default()
    };
    if group.workspace != team {
        return Err(ApiError::new("no_such_subteam"));
    }
    Ok(group)
}

pub(super) fn usergroups_update(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    may_edit_usergroups(world, caller)?;
    let group = own_usergroup(world, caller, args, MISSING_ARGUMENT)?;
    let (id, team) = (group.id.clone(), group.workspace.clone());
    check_usergroup_names(
        world,
        &team,
        Some(&id),
        args.get("name"),
        args.get("handle"),
    )?;
    if args
        .get("description")
        .is_some_and(|d| d.chars().count() > 140)
    {
        return Err(ApiError::new("description_too_long"));
    }
    let channels = args
        .0
        .contains_key("channels")
        .then(|| args.list("channels"));
    if let Some(channels) = &channels {
        check_channels(world, &team, channels)?;
        if channels.len() > 100 {
            return Err(ApiError::new("too_many_linked_channels"));
        }
    }
    let group = world.usergroup_mut(&id).expect("found above");
    if let Some(name) = args.get("name") {
        group.name = name.to_string();
    }
    if let Some(handle) = args.get("handle") {
        group.handle = handle.to_string();
    }
    if let Some(description) = args.0.get("description") {
        group.description = description.clone();
    }
    if let Some(channels) = channels {
        group.channels = channels;
    }
    group.updated = caller.now;
    group.updated_by = caller.token.user.clone();
    world.note(Change::SubteamUpdated { id: id.clone() });
    reply_usergroup(world, &id, args)
}

pub(super) fn usergroups_set_enabled(
    world: &mut World,
    caller: &Caller,
    args: &Args,
    enable: bool,
) -> Reply {
    may_edit_usergroups(world, caller)?;
    let missing = if enable {
        MISSING_ARGUMENT
    } else {
        TARGET_TEAM
    };
    let group = own_usergroup(world, caller, args, missing)?;
    if enable && !group.disabled {
        return Err(ApiError::new("already_enabled"));
    }
    let id = group.id.clone();
    let group = world.usergroup_mut(&id).expect("found above");
    group.disabled = !enable;
    group.updated = caller.now;
    group.updated_by = caller.token.user.clone();
    world.note(Change::SubteamUpdated { id: id.clone() });
    reply_usergroup(world, &id, args)
}

pub(super) fn usergroups_users_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    let group = own_usergroup(world, caller, args, MISSING_ARGUMENT)?;
    if group.disabled && !args.flag("include_disabled") {
        return Err(ApiError::new("no_such_subteam"));
    }
    ok(vec![("users", json!(group.users))])
}

pub(super) fn usergroups_users_update(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    may_edit_usergroups(world, caller)?;
    let group = own_usergroup(world, caller, args, MISSING_ARGUMENT)?;
    let (id, team) = (group.id.clone(), group.workspace.clone());
    let users = args.list("users");
    if users.is_empty() {
        // Slack cannot empty a usergroup; disable it instead.
        return Err(ApiError::new("no_users_provided"));
    }
    let mut outside = Vec::new();
    for user_id in &users {
        let Some(user) = world.user(user_id) else {
            return Err(ApiError::new("invalid_users"));
        };
        if !user.active || user.bot || user.guest.is_some() {
            return Err(ApiError::new("invalid_users"));
        }
        if !user.workspaces.contains(&team) {
            outside.push(user_id.clone());
        }
    }
    if !outside.is_empty() {
        return Err(ApiError::new("failed_for_some_users").with("invalid_users", json!(outside)));
    }
    let unique: Vec<String> = {
        let mut seen = BTreeSet::new();
        users
            .into_iter()
            .filter(|u| seen.insert(u.clone()))
            .collect()
    };
    world.set_usergroup_users(&id, unique, caller.now, &caller.token.user);
    reply_usergroup(world, &id, args)
}
