//! The conversations' methods, and `chat.postMessage`.

use super::*;

/// A channel the caller can see: public ones in its workspaces, private ones it is in.
pub(super) fn visible_channel<'a>(
    world: &'a World,
    caller: &Caller,
    id: &str,
) -> Result<&'a crate::world::Channel, ApiError> {
    let channel = world
        .channel(id)
        .ok_or_else(|| ApiError::new("channel_not_found"))?;
    if channel.private && !channel.members.contains(&caller.token.user) {
        return Err(ApiError::new("channel_not_found"));
    }
    let scope = if channel.private {
        "groups:read"
    } else {
        "channels:read"
    };
    if !caller.has_scope(scope)
        && !caller.has_scope(if channel.private {
            "groups:write"
        } else {
            "channels:manage"
        })
    {
        return Err(missing_scope(&[scope], &caller.token));
    }
    Ok(channel)
}

pub(super) fn conversations_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    let team = workspace(world, caller, args, "missing_argument")?;
    let types = args.list("types");
    let types: BTreeSet<&str> = if types.is_empty() {
        BTreeSet::from(["public_channel"])
    } else {
        types.iter().map(String::as_str).collect()
    };
    if types
        .iter()
        .any(|t| !["public_channel", "private_channel", "mpim", "im"].contains(t))
    {
        return Err(ApiError::new("invalid_types"));
    }
    if types.contains("private_channel") && !caller.has_scope("groups:read") {
        return Err(missing_scope(&["groups:read"], &caller.token));
    }
    if types.contains("public_channel") && !caller.has_scope("channels:read") {
        return Err(missing_scope(&["channels:read"], &caller.token));
    }
    let exclude_archived = args.flag("exclude_archived");
    let in_team: Vec<&crate::world::Channel> = world
        .channels
        .iter()
        .filter(|c| c.workspace == team)
        .collect();
    let user = caller.token.user.clone();
    let (chosen, next) = page(world, &in_team, args, 100, 999, |c| {
        let wanted = if c.private {
            types.contains("private_channel") && c.members.contains(&user)
        } else {
            types.contains("public_channel")
        };
        wanted && !(exclude_archived && c.archived)
    })?;
    let objects: Vec<Value> = chosen
        .into_iter()
        .map(|c| channel_object(c, &user, true))
        .collect();
    ok(vec![
        ("channels", json!(objects)),
        ("response_metadata", metadata(next)),
    ])
}

pub(super) fn conversations_info(world: &World, caller: &Caller, args: &Args) -> Reply {
    let channel = visible_channel(world, caller, args.required("channel")?)?;
    ok(vec![(
        "channel",
        channel_object(
            channel,
            &caller.token.user,
            args.flag("include_num_members"),
        ),
    )])
}

pub(super) fn conversations_members(world: &World, caller: &Caller, args: &Args) -> Reply {
    let channel = visible_channel(world, caller, args.required("channel")?)?;
    let (chosen, next) = page(world, &channel.members, args, 100, 1000, |_| true)?;
    ok(vec![
        ("members", json!(chosen)),
        ("response_metadata", metadata(next)),
    ])
}

pub(super) fn check_channel_name(world: &World, team: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::new("invalid_name_required"));
    }
    if name.chars().count() > 80 {
        return Err(ApiError::new("invalid_name_maxlength"));
    }
    // Periods and spaces are punctuation Slack refuses; so is a name of punctuation alone.
    if name.contains(['.', ' ']) || !name.chars().any(char::is_alphanumeric) {
        return Err(ApiError::new("invalid_name_punctuation"));
    }
    if !name.chars().all(|c| {
        c.is_lowercase()
            || c.is_ascii_digit()
            || c == '-'
            || c == '_'
            || (c.is_alphabetic() && !c.is_uppercase())
    }) {
        return Err(ApiError::new("invalid_name_specials"));
    }
    let taken = world
        .channels
        .iter()
        .any(|c| c.workspace == team && c.name == name)
        || world.users.iter().any(|u| u.user_name == name);
    if taken {
        return Err(ApiError::new("name_taken"));
    }
    Ok(())
}

pub(super) fn conversations_create(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let team = workspace(world, caller, args, "missing_argument")?;
    let name = args.get("name").unwrap_or_default();
    let private = args.flag("is_private");
    if private && !caller.has_scope("groups:write") {
        return Err(missing_scope(&["groups:write"], &caller.token));
    }
    check_channel_name(world, &team, name)?;
    let id = world.mint_id('C');
    let channel = crate::world::Channel {
        id: id.clone(),
        workspace: team,
        name: name.to_string(),
        private,
        archived: false,
        general: false,
        topic: String::new(),
        purpose: String::new(),
        members: vec![caller.token.user.clone()],
        creator: caller.token.user.clone(),
        created: caller.now,
    };
    let object = channel_object(&channel, &caller.token.user, false);
    world.add_channel(channel);
    world.note(Change::ChannelCreated {
        channel: id.clone(),
    });
    world.note(Change::Joined {
        channel: id,
        user: caller.token.user.clone(),
        inviter: None,
    });
    ok(vec![("channel", object)])
}

/// A channel a write acts on: it must exist, be visible, and for private channels the
/// caller must be in it.
pub(super) fn writable_channel(
    world: &World,
    caller: &Caller,
    id: &str,
) -> Result<crate::world::Channel, ApiError> {
    let channel = world
        .channel(id)
        .ok_or_else(|| ApiError::new("channel_not_found"))?;
    if channel.private {
        if !caller.has_scope("groups:write") && !caller.has_scope("groups:write.invites") {
            return Err(missing_scope(&["groups:write"], &caller.token));
        }
        if !channel.members.contains(&caller.token.user) {
            return Err(ApiError::new("not_in_channel"));
        }
    }
    Ok(channel.clone())
}

pub(super) fn conversations_set_archived(
    world: &mut World,
    caller: &Caller,
    args: &Args,
    archive: bool,
) -> Reply {
    let channel = writable_channel(world, caller, args.required("channel")?)?;
    match (archive, channel.archived) {
        (true, true) => return Err(ApiError::new("already_archived")),
        (false, false) => return Err(ApiError::new("not_archived")),
        _ => {}
    }
    if archive && channel.general {
        return Err(ApiError::new("cant_archive_general"));
    }
    world
        .channel_mut(&channel.id)
        .expect("found above")
        .archived = archive;
    world.note(Change::Archived {
        channel: channel.id.clone(),
        by: caller.token.user.clone(),
        archived: archive,
    });
    ok(Vec::new())
}

pub(super) fn conversations_invite(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let channel = writable_channel(world, caller, args.required("channel")?)?;
    if channel.archived {
        return Err(ApiError::new("is_archived"));
    }
    let users = args.list("users");
    if users.is_empty() {
        return Err(ApiError::new("no_user"));
    }
    if users.len() > 100 {
        return Err(ApiError::new("too_many_users"));
    }
    let mut errors = Vec::new();
    let mut accepted = Vec::new();
    for id in &users {
        let error = match world.user(id) {
            None => Some("user_not_found"),
            Some(_) if *id == caller.token.user => Some("cant_invite_self"),
            Some(_) if channel.members.contains(id) => Some("already_in_channel"),
            Some(user) if !user.active => Some("cant_invite"),
            Some(user) if !user.workspaces.contains(&channel.workspace) => {
                Some("org_user_not_in_team")
            }
            Some(user)
                if user.guest == Some(Guest::Single)
                    && world.channels.iter().any(|c| c.members.contains(id)) =>
            {
                Some("ura_max_channels")
            }
            Some(_) => None,
        };
        match error {
            Some(error) => errors.push(json!({"user": id, "ok": false, "error": error})),
            None => accepted.push(id.clone()),
        }
    }
    if !errors.is_empty() && !args.flag("force") {
        let first = errors[0]["error"]
            .as_str()
            .unwrap_or("cant_invite")
            .to_string();
        return Err(ApiError::new(&first).with("errors", json!(errors)));
    }
    for user in &accepted {
        world.join_channel(&channel.id, user, Some(&caller.token.user));
    }
    let target = world.channel(&channel.id).expect("found above");
    let object = channel_object(target, &caller.token.user, false);
    let mut reply = vec![("channel", object)];
    if !errors.is_empty() {
        reply.push(("errors", json!(errors)));
    }
    ok(reply)
}

pub(super) fn conversations_kick(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let channel = writable_channel(world, caller, args.required("channel")?)?;
    let user = args
        .get("user")
        .ok_or_else(|| ApiError::new("user_not_found"))?;
    if user.contains(',') {
        return Err(ApiError::new("invalid_arguments"));
    }
    if world.user(user).is_none() {
        return Err(ApiError::new("user_not_found"));
    }
    if user == caller.token.user {
        return Err(ApiError::new("cant_kick_self"));
    }
    if channel.general {
        return Err(ApiError::new("cant_kick_from_general"));
    }
    if !channel.members.iter().any(|m| m == user) {
        return Err(ApiError::new("not_in_channel"));
    }
    world.leave_channel(&channel.id, user);
    ok(vec![("errors", json!({}))])
}

/// `conversations.rename`: a new name, checked as `conversations.create` checks one; an
/// archived channel cannot be renamed.
pub(super) fn conversations_rename(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let channel = writable_channel(world, caller, args.required("channel")?)?;
    if channel.archived {
        return Err(ApiError::new("is_archived"));
    }
    let name = args.required("name")?.to_string();
    if name != channel.name {
        check_channel_name(world, &channel.workspace, &name)?;
    }
    let user = caller.token.user.clone();
    let object = {
        let stored = world
            .channels
            .iter_mut()
            .find(|c| c.id == channel.id)
            .expect("found above");
        stored.name = name;
        channel_object(stored, &user, false)
    };
    world.note(Change::Renamed {
        channel: channel.id.clone(),
    });
    ok(vec![("channel", object)])
}

/// `conversations.join`: the caller joins a public channel (a private one must invite
/// it); joining one it is in answers `ok` with the `already_in_channel` warning.
pub(super) fn conversations_join(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let id = args.required("channel")?.to_string();
    let channel = world
        .channel(&id)
        .filter(|c| !c.private || c.members.contains(&caller.token.user))
        .ok_or_else(|| ApiError::new("channel_not_found"))?;
    if channel.private {
        return Err(ApiError::new("method_not_supported_for_channel_type"));
    }
    if channel.archived {
        return Err(ApiError::new("is_archived"));
    }
    let joined = world.join_channel(&id, &caller.token.user, None);
    let object = channel_object(
        world.channel(&id).expect("found above"),
        &caller.token.user,
        false,
    );
    let mut reply = vec![("channel", object)];
    if !joined {
        reply.push(("warning", json!("already_in_channel")));
    }
    ok(reply)
}

/// `chat.postMessage`: `channel` is an id or a name (`#it-ops`), in `team_id`'s workspace
/// or the caller's; a private channel needs the caller in it, a public one too unless the
/// token has `chat:write.public`. The message is kept for tests to read.
pub(super) fn chat_post_message(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let target = args.required("channel")?;
    let team = team_for(world, &caller.token, args);
    let channel = world
        .channel(target)
        .or_else(|| {
            let name = target.trim_start_matches('#');
            world
                .channels
                .iter()
                .find(|c| c.name == name && team.as_deref().is_none_or(|t| c.workspace == t))
        })
        .cloned()
        .ok_or_else(|| ApiError::new("channel_not_found"))?;
    let member = channel.members.contains(&caller.token.user);
    if channel.private && !member {
        return Err(ApiError::new("channel_not_found"));
    }
    if !member && !caller.has_scope("chat:write.public") {
        return Err(ApiError::new("not_in_channel"));
    }
    if channel.archived {
        return Err(ApiError::new("is_archived"));
    }
    let text = args.get("text").unwrap_or_default().to_string();
    let blocks = match args.get("blocks").filter(|b| !b.is_empty()) {
        None => Value::Null,
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Array(items)) if items.len() <= 50 => Value::Array(items),
            _ => return Err(ApiError::new("invalid_blocks")),
        },
    };
    if text.trim().is_empty() && blocks.is_null() {
        return Err(ApiError::new("no_text"));
    }
    if text.chars().count() > 40_000 {
        return Err(ApiError::new("msg_too_long"));
    }
    let ts = format!("{}.{:06}", caller.now, world.messages.len() + 1);
    world.messages.push(crate::world::Message {
        channel: channel.id.clone(),
        user: caller.token.user.clone(),
        text: text.clone(),
        blocks: blocks.clone(),
        ts: ts.clone(),
    });
    ok(vec![
        ("channel", json!(channel.id)),
        ("ts", json!(ts)),
        (
            "message",
            json!({"type": "message", "user": caller.token.user, "text": text, "ts": ts, "blocks": blocks}),
        ),
    ])
}
