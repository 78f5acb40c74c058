//! `auth.test` and the users' methods.

use super::*;

pub(super) fn auth_test(world: &World, caller: &Caller) -> Reply {
    let user = world.user(&caller.token.user);
    let team_id = caller
        .token
        .workspace
        .clone()
        .or_else(|| world.enterprise.as_ref().map(|e| e.id.clone()))
        .unwrap_or_default();
    let workspace = world.workspaces.iter().find(|w| w.id == team_id);
    let mut reply = vec![
        (
            "url",
            json!(format!(
                "https://{}.slack.com/",
                workspace.map_or("org", |w| w.domain.as_str())
            )),
        ),
        ("team", json!(workspace.map_or("", |w| w.name.as_str()))),
        ("user", json!(user.map_or("", |u| u.user_name.as_str()))),
        ("team_id", json!(team_id)),
        ("user_id", json!(caller.token.user)),
        ("is_enterprise_install", json!(caller.token.org_level)),
    ];
    if let Some(enterprise) = &world.enterprise {
        reply.push(("enterprise_id", json!(enterprise.id)));
    }
    if caller.token.kind == TokenKind::Bot {
        reply.push(("bot_id", json!(format!("B{}", &caller.token.user[1..]))));
    }
    ok(reply)
}

pub(super) fn users_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    let team = workspace(world, caller, args, "missing_argument")?;
    let members: Vec<&crate::world::User> = world
        .users
        .iter()
        .filter(|u| u.workspaces.contains(&team))
        .collect();
    if args.get("limit").is_none_or(|l| l == "0") && members.len() > 1000 {
        return Err(ApiError::new("limit_required"));
    }
    let show_email = caller.has_scope("users:read.email");
    let (chosen, next) = page(world, &members, args, members.len().max(1), 1000, |_| true)?;
    let objects: Vec<WireUser> = chosen
        .into_iter()
        .map(|u| user_object(world, u, show_email))
        .collect();
    Ok(vec![
        ("members", raw(&objects)),
        ("cache_ts", raw(&caller.now)),
        ("response_metadata", raw(&metadata(next))),
    ])
}

pub(super) fn users_info(world: &World, caller: &Caller, args: &Args) -> Reply {
    let id = args.required("user")?;
    let user = world
        .user(id)
        .ok_or_else(|| ApiError::new("user_not_found"))?;
    Ok(vec![(
        "user",
        raw(&user_object(
            world,
            user,
            caller.has_scope("users:read.email"),
        )),
    )])
}

pub(super) fn users_lookup_by_email(world: &World, _caller: &Caller, args: &Args) -> Reply {
    let email = args.required("email")?;
    let skip_deactivated = world.settings.lookup_by_email_skips_deactivated;
    match world
        .user_by_email(email)
        .filter(|u| u.active || !skip_deactivated)
    {
        Some(user) => Ok(vec![("user", raw(&user_object(world, user, true)))]),
        None => Err(ApiError::new("users_not_found")),
    }
}
