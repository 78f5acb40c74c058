//! The Users endpoints: list, read, create, replace, patch, delete.

use super::*;

pub(super) fn body_object<'r>(
    request: &'r ScimRequest,
) -> Result<&'r Map<String, Value>, ScimReply> {
    request
        .body
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| error(400, "invalid_request_payload"))
}

/// The primary email of a SCIM `emails` array: `primary: true`, else `type: work`, else
/// the first.
pub(super) fn primary_email(emails: &Value) -> Option<String> {
    let items = emails.as_array()?;
    let pick = items
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| {
            items
                .iter()
                .find(|e| e.get("type").and_then(Value::as_str) == Some("work"))
        })
        .or_else(|| items.first())?;
    pick.get("value")
        .and_then(Value::as_str)
        .map(str::to_string)
}

pub(super) fn valid_email(email: &str) -> bool {
    email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
    })
}

pub(super) fn create_user(world: &mut World, request: &ScimRequest) -> ScimReply {
    let body = match body_object(request) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(raw_name) = body.get("userName").and_then(Value::as_str) else {
        return error(400, "username_required");
    };
    let user_name = World::normalise_user_name(raw_name);
    if user_name.is_empty() {
        return error(400, "username_empty");
    }
    let Some(email) = body.get("emails").and_then(primary_email) else {
        return error(400, "email_empty");
    };
    if !valid_email(&email) {
        return error(400, "email_invalid");
    }
    // An address held by any account, deactivated ones included, cannot be reused.
    if world.user_by_email(&email).is_some() {
        return error(409, "email_taken");
    }
    if world.user_name_taken(&user_name, None) {
        return error(409, "username_taken");
    }
    let prefix = if world.enterprise.is_some() { 'W' } else { 'U' };
    let id = world.mint_id(prefix);
    let single_workspace = if world.enterprise.is_none() {
        world
            .workspaces
            .first()
            .map(|w| vec![w.id.clone()])
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let now = request.now as u64;
    let mut user = User {
        id: id.clone(),
        user_name,
        email,
        given_name: String::new(),
        family_name: String::new(),
        display_name: String::new(),
        title: String::new(),
        department: String::new(),
        manager: None,
        active: true,
        admin: false,
        owner: false,
        primary_owner: false,
        guest: None,
        bot: false,
        workspaces: single_workspace,
        external_id: String::new(),
        created: now,
        updated: now,
    };
    if let Err(reply) = apply_attributes(world, &mut user, body) {
        return reply;
    }
    user.active = body.get("active").and_then(Value::as_bool).unwrap_or(true);
    let workspaces = user.workspaces.clone();
    world.add_user(user);
    for team in workspaces {
        world.note(Change::TeamJoin {
            user: id.clone(),
            team,
        });
    }
    let user = world.user(&id).expect("just added");
    reply(201, user_resource(world, user, &request.base))
}

/// Applies the attributes present in a resource body (POST, PUT, path-less PATCH).
///
/// One piece: one arm per attribute Slack's SCIM API takes, each with its own checks.
pub(super) fn apply_attributes(
    world: &World,
    user: &mut User,
    body: &Map<String, Value>,
) -> Result<(), ScimReply> {
    for (key, value) in body {
        match key.as_str() {
            "schemas" | "id" | "meta" | "groups" | "active" | "password" => {}
            "userName" | "nickName" => {
                let name = value
                    .as_str()
                    .map(World::normalise_user_name)
                    .unwrap_or_default();
                if name.is_empty() {
                    return Err(error(400, "username_empty"));
                }
                if world.user_name_taken(&name, Some(&user.id)) {
                    return Err(error(409, "username_taken"));
                }
                user.user_name = name;
            }
            "externalId" => user.external_id = value.as_str().unwrap_or_default().to_string(),
            "displayName" => {
                let text = value.as_str().unwrap_or_default();
                if text.starts_with('@') {
                    return Err(error(400, "invalid_starts_with_at"));
                }
                if text.chars().count() > 80 {
                    return Err(error(400, "invalid_display_name"));
                }
                user.display_name = text.to_string();
            }
            "title" => user.title = value.as_str().unwrap_or_default().to_string(),
            "name" => {
                if let Some(given) = value.get("givenName").and_then(Value::as_str) {
                    user.given_name = given.to_string();
                }
                if let Some(family) = value.get("familyName").and_then(Value::as_str) {
                    user.family_name = family.to_string();
                }
            }
            "emails" => {
                let Some(email) = primary_email(value) else {
                    return Err(error(400, "missing_primary_email"));
                };
                if !valid_email(&email) {
                    return Err(error(400, "email_invalid"));
                }
                if world
                    .users
                    .iter()
                    .any(|u| u.id != user.id && u.email.eq_ignore_ascii_case(&email))
                {
                    return Err(error(409, "email_taken"));
                }
                user.email = email;
            }
            ENTERPRISE => {
                if let Some(department) = value.get("department").and_then(Value::as_str) {
                    user.department = department.to_string();
                }
                if let Some(manager) = value.get("manager") {
                    let Some(id) = manager.get("managerId").and_then(Value::as_str) else {
                        return Err(error(400, "improper_enterprise_schema_format"));
                    };
                    user.manager = (!id.is_empty()).then(|| id.to_string());
                }
            }
            GUEST => {
                if value.get("type").and_then(Value::as_str) != Some("multi") {
                    return Err(error(400, "invalid_attribute_format"));
                }
                if user.admin || user.owner {
                    return Err(error(400, "cannot_make_user_guest"));
                }
                user.guest = Some(Guest::Multi);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks that a user may be deactivated through SCIM.
pub(super) fn may_deactivate(user: &User) -> Result<(), ScimReply> {
    if user.primary_owner {
        return Err(error(403, "cannot_disable_primary_owner"));
    }
    if user.bot {
        return Err(error(403, "cannot_disable_bot_user_with_scim"));
    }
    Ok(())
}

pub(super) fn set_active(
    world: &mut World,
    id: &str,
    active: bool,
    now: u64,
) -> Result<(), ScimReply> {
    let user = world.user(id).expect("checked by the caller");
    if !active {
        may_deactivate(user)?;
        world.deactivate(id, now);
    } else {
        world.reactivate(id, now);
    }
    Ok(())
}

pub(super) fn put_user(world: &mut World, request: &ScimRequest, id: &str) -> ScimReply {
    let Some(existing) = world.user(id).cloned() else {
        return error(404, "no_such_user");
    };
    let body = match body_object(request) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    if !body.contains_key("userName") {
        return error(400, "username_required");
    }
    if !body.contains_key("emails") {
        return error(400, "missing_primary_email");
    }
    // PUT replaces everything: what the body leaves out becomes blank. Except
    // `externalId`, which Slack does not update through PUT.
    let external_id = existing.external_id.clone();
    let mut user = User {
        given_name: String::new(),
        family_name: String::new(),
        display_name: String::new(),
        title: String::new(),
        department: String::new(),
        manager: None,
        ..existing
    };
    if let Err(reply) = apply_attributes(world, &mut user, body) {
        return reply;
    }
    user.external_id = external_id;
    user.updated = request.now as u64;
    let active = match body.get("active").and_then(Value::as_bool) {
        Some(active) => active,
        None => !world.settings.put_without_active_deactivates && user.active,
    };
    *world.user_mut(id).expect("exists") = user;
    if let Err(reply) = set_active(world, id, active, request.now as u64) {
        return reply;
    }
    finish_user_update(world, request, id, |field| has_attribute(body, field))
}

/// After an update: the injected required-field regression deactivates a user whose
/// update lacked a required attribute, exactly as Slack did in April 2024.
pub(super) fn finish_user_update(
    world: &mut World,
    request: &ScimRequest,
    id: &str,
    sent: impl Fn(&str) -> bool,
) -> ScimReply {
    world.note(Change::UserChanged { id: id.to_string() });
    if request.required_fields.iter().any(|field| !sent(field)) {
        world.deactivate(id, request.now as u64);
    }
    let user = world.user(id).expect("exists");
    reply(200, user_resource(world, user, &request.base))
}

/// Whether a resource body carries an attribute given as a dotted path (`name.givenName`).
pub(super) fn has_attribute(body: &Map<String, Value>, path: &str) -> bool {
    let mut current: Option<&Value> = None;
    for (index, part) in path.split('.').enumerate() {
        current = if index == 0 {
            body.get(part)
        } else {
            current.and_then(|v| v.get(part))
        };
        if current.is_none() {
            return false;
        }
    }
    current.is_some()
}

/// One PatchOp operation: `op` (lowercase), optional `path`, optional `value`.
type PatchOperation = (String, Option<String>, Option<Value>);

pub(super) fn patch_operations(request: &ScimRequest) -> Result<Vec<PatchOperation>, ScimReply> {
    let body = body_object(request)?;
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v == PATCH_OP));
    if !schemas_ok {
        return Err(error(400, "missing_schema_element"));
    }
    let operations = body
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| error(400, "invalid_request_payload"))?;
    operations
        .iter()
        .map(|operation| {
            let op = operation
                .get("op")
                .and_then(Value::as_str)
                .map(str::to_lowercase)
                .filter(|op| ["add", "replace", "remove"].contains(&op.as_str()))
                .ok_or_else(|| error(400, "invalid_request_payload"))?;
            let path = operation
                .get("path")
                .and_then(Value::as_str)
                .map(str::to_string);
            Ok((op, path, operation.get("value").cloned()))
        })
        .collect()
}

/// Normalises the enterprise extension's two path spellings to `department` and
/// `manager.managerId`.
pub(super) fn user_patch_path(path: &str) -> String {
    for prefix in [format!("{ENTERPRISE}:"), format!("{ENTERPRISE}.")] {
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            return format!("enterprise.{rest}");
        }
    }
    path.to_string()
}

/// PATCH a user: each operation applied in order to a copy, which replaces the user only
/// when every one succeeded; then `active`, then the required-field regression.
pub(super) fn patch_user(world: &mut World, request: &ScimRequest, id: &str) -> ScimReply {
    let Some(mut user) = world.user(id).cloned() else {
        return error(404, "no_such_user");
    };
    let operations = match patch_operations(request) {
        Ok(operations) => operations,
        Err(reply) => return reply,
    };
    let mut patch = UserPatch::default();
    for (op, path, value) in &operations {
        let applied = match path {
            None => patch.whole(world, &mut user, value.as_ref()),
            Some(path) => patch.at_path(world, &mut user, path, op == "remove", value.as_ref()),
        };
        if let Err(reply) = applied {
            return reply;
        }
    }
    user.updated = request.now as u64;
    *world.user_mut(id).expect("exists") = user;
    if let Some(active) = patch.active
        && let Err(reply) = set_active(world, id, active, request.now as u64)
    {
        return reply;
    }
    let sent = patch.sent;
    finish_user_update(world, request, id, |field| {
        sent.iter()
            .any(|s| s == field || s.starts_with(&format!("{field}.")))
    })
}

/// What a PATCH's operations set beside the attributes: `active`, and the attribute
/// paths sent (for the required-field regression).
#[derive(Default)]
struct UserPatch {
    active: Option<bool>,
    sent: Vec<String>,
}

impl UserPatch {
    /// A path-less operation: its value is a partial resource.
    fn whole(
        &mut self,
        world: &World,
        user: &mut User,
        value: Option<&Value>,
    ) -> Result<(), ScimReply> {
        let Some(object) = value.and_then(Value::as_object) else {
            return Err(error(400, "invalid_request_payload"));
        };
        if object.contains_key("externalId") {
            // Slack: "externalId ... updates not supported via PATCH".
            return Err(error(400, "invalid_attribute_format"));
        }
        if let Some(flag) = object.get("active").and_then(Value::as_bool) {
            self.active = Some(flag);
        }
        for key in object.keys() {
            self.sent.push(key.clone());
            if let Some(inner) = object.get(key).and_then(Value::as_object) {
                self.sent.extend(inner.keys().map(|k| format!("{key}.{k}")));
            }
        }
        apply_attributes(world, user, object)
    }

    /// An operation on one attribute path; `remove` blanks it.
    fn at_path(
        &mut self,
        world: &World,
        user: &mut User,
        path: &str,
        remove: bool,
        value: Option<&Value>,
    ) -> Result<(), ScimReply> {
        let path = user_patch_path(path);
        self.sent.push(path.clone());
        let text = || {
            let text = value.and_then(Value::as_str).unwrap_or_default();
            if remove {
                String::new()
            } else {
                text.to_string()
            }
        };
        let with = |key: &str, value: Value| Map::from_iter([(key.to_string(), value)]);
        match path.as_str() {
            "active" => {
                let flag = value.and_then(|v| {
                    v.as_bool()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                });
                match flag {
                    Some(flag) if !remove => self.active = Some(flag),
                    _ => return Err(error(400, "invalid_attribute_format")),
                }
            }
            "userName" | "nickName" => {
                let name = value.and_then(Value::as_str).unwrap_or_default();
                apply_attributes(world, user, &with("userName", json!(name)))?;
            }
            "displayName" => user.display_name = text(),
            "title" => user.title = text(),
            "name.givenName" => user.given_name = text(),
            "name.familyName" => user.family_name = text(),
            // Slack: "externalId ... updates not supported via PATCH".
            "externalId" => return Err(error(400, "invalid_attribute_format")),
            "enterprise.department" => user.department = text(),
            "enterprise.manager.managerId" | "enterprise.manager" => {
                let id = value
                    .and_then(|v| {
                        v.as_str()
                            .or_else(|| v.get("managerId").and_then(Value::as_str))
                    })
                    .unwrap_or_default();
                user.manager = (!remove && !id.is_empty()).then(|| id.to_string());
            }
            p if p == "emails" || p.starts_with("emails[") => {
                if remove {
                    return Err(error(400, "missing_primary_email"));
                }
                let emails = match value {
                    Some(Value::String(email)) => json!([{"value": email, "primary": true}]),
                    Some(other) => other.clone(),
                    None => return Err(error(400, "invalid_request_payload")),
                };
                apply_attributes(world, user, &with("emails", emails))?;
            }
            _ => return Err(error(400, "invalid_attribute_format")),
        }
        Ok(())
    }
}

pub(super) fn delete_user(world: &mut World, request: &ScimRequest, id: &str) -> ScimReply {
    let Some(user) = world.user(id) else {
        return error(404, "no_such_user");
    };
    if let Err(reply) = may_deactivate(user) {
        return reply;
    }
    // DELETE deactivates, never deletes, and takes effect after a delay; repeating it
    // is harmless.
    if user.active && !world.pending_deactivations.iter().any(|p| p.user == id) {
        let due = request.now + world.settings.scim_delete_delay_secs;
        world
            .pending_deactivations
            .push(crate::world::PendingDeactivation {
                user: id.to_string(),
                due,
            });
        world.run_due_jobs(request.now);
    }
    ScimReply {
        status: 204,
        body: None,
        raw: None,
    }
}
