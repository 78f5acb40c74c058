//! The Groups endpoints (IdP groups pushed to Slack).

use super::*;

/// The user ids of a `members` value, checked: they exist, are active and are not guests.
pub(super) fn member_ids(world: &World, value: Option<&Value>) -> Result<Vec<String>, ScimReply> {
    let Some(items) = value.and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    if items.len() > MAX_GROUP_WRITE {
        return Err(error(400, "too_many_users"));
    }
    let mut ids = Vec::new();
    for item in items {
        let id = item
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| error(400, "invalid_request_payload"))?;
        let Some(user) = world.user(id) else {
            return Err(error(400, "no_such_user"));
        };
        if !user.active || user.guest == Some(Guest::Single) {
            return Err(error(400, "unable_to_add_deleted_or_guest_to_group"));
        }
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

pub(super) fn create_group(world: &mut World, request: &ScimRequest) -> ScimReply {
    let body = match body_object(request) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(name) = body
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return error(400, "missing_schema_element");
    };
    let members = match member_ids(world, body.get("members")) {
        Ok(members) => members,
        Err(reply) => return reply,
    };
    let id = world.mint_id('S');
    world.idp_groups.push(IdpGroup {
        id: id.clone(),
        name: name.to_string(),
        members,
        workspaces: Vec::new(),
        channels: Vec::new(),
        external_id: body
            .get("externalId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        created: request.now as u64,
    });
    let group = world.idp_groups.last().expect("just added");
    reply(201, group_resource(world, group, &request.base))
}

pub(super) fn put_group(world: &mut World, request: &ScimRequest, id: &str) -> ScimReply {
    let Some(index) = world.idp_groups.iter().position(|g| g.id == id) else {
        return error(404, "no_such_group");
    };
    let body = match body_object(request) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(name) = body.get("displayName").and_then(Value::as_str) else {
        return error(400, "missing_schema_element");
    };
    let members = match member_ids(world, body.get("members")) {
        Ok(members) => members,
        Err(reply) => return reply,
    };
    let group = &mut world.idp_groups[index];
    group.name = name.to_string();
    group.members = members;
    reply_group(world, request, index)
}

pub(super) fn reply_group(world: &World, request: &ScimRequest, index: usize) -> ScimReply {
    reply(
        200,
        group_resource(world, &world.idp_groups[index], &request.base),
    )
}

/// `members[value eq "U1"]` or `members[value eq U1]`: the member id it names.
pub(super) fn member_filter(path: &str) -> Option<String> {
    let inner = path.strip_prefix("members[")?.strip_suffix(']')?;
    let mut parts = inner.splitn(3, char::is_whitespace);
    let (attribute, operator, value) = (parts.next()?, parts.next()?, parts.next()?);
    if !attribute.eq_ignore_ascii_case("value") || !operator.eq_ignore_ascii_case("eq") {
        return None;
    }
    Some(value.trim().trim_matches('"').to_string())
}

pub(super) fn patch_group(world: &mut World, request: &ScimRequest, id: &str) -> ScimReply {
    let Some(index) = world.idp_groups.iter().position(|g| g.id == id) else {
        return error(404, "no_such_group");
    };
    let operations = match patch_operations(request) {
        Ok(operations) => operations,
        Err(reply) => return reply,
    };
    let mut group = world.idp_groups[index].clone();
    for (op, path, value) in &operations {
        match (op.as_str(), path.as_deref()) {
            ("add", Some("members")) | ("add", None)
                if value.as_ref().is_some_and(Value::is_array) || path.is_some() =>
            {
                let ids = match member_ids(world, value.as_ref()) {
                    Ok(ids) => ids,
                    Err(reply) => return reply,
                };
                for id in ids {
                    if !group.members.contains(&id) {
                        group.members.push(id);
                    }
                }
            }
            ("replace", Some("members")) => {
                group.members = match member_ids(world, value.as_ref()) {
                    Ok(ids) => ids,
                    Err(reply) => return reply,
                };
            }
            ("remove", Some("members")) => match value.as_ref().and_then(Value::as_array) {
                // With a value list, only those members go (java-slack-sdk's form).
                Some(items) => {
                    let gone: Vec<&str> = items
                        .iter()
                        .filter_map(|i| i.get("value").and_then(Value::as_str))
                        .collect();
                    group.members.retain(|m| !gone.contains(&m.as_str()));
                }
                None => group.members.clear(),
            },
            ("remove", Some(path)) if path.starts_with("members[") => match member_filter(path) {
                Some(member) => group.members.retain(|m| *m != member),
                None => return error(400, "invalid_filter_group"),
            },
            ("replace" | "add", Some("displayName")) => {
                match value.as_ref().and_then(Value::as_str) {
                    Some(name) if !name.is_empty() => group.name = name.to_string(),
                    _ => return error(400, "invalid_attribute_format"),
                }
            }
            ("replace" | "add", None) => {
                let Some(object) = value.as_ref().and_then(Value::as_object) else {
                    return error(400, "invalid_request_payload");
                };
                if let Some(name) = object.get("displayName").and_then(Value::as_str) {
                    group.name = name.to_string();
                }
                if object.contains_key("members") {
                    let ids = match member_ids(world, object.get("members")) {
                        Ok(ids) => ids,
                        Err(reply) => return reply,
                    };
                    if op == "replace" {
                        group.members = ids;
                    } else {
                        for id in ids {
                            if !group.members.contains(&id) {
                                group.members.push(id);
                            }
                        }
                    }
                }
            }
            _ => return error(400, "invalid_request_payload"),
        }
    }
    if group.members.len() > MAX_GROUP_WRITE {
        return error(400, "group_member_max_exceeded");
    }
    world.idp_groups[index] = group;
    reply_group(world, request, index)
}
