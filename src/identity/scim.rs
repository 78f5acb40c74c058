//! The `scim` identity source: any SCIM 2.0 server (RFC 7644). Users and Groups are read
//! with `startIndex`/`count` paging and no filters (servers differ too much in what they
//! filter). Group members that are groups (`type: Group`, a `$ref` to `/Groups/`, or the id
//! of a group) become nested groups.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::http::{get_json, text};
use super::{IdentityError, IdentitySource};
use crate::model::directory::{Directory, Group, Person, PersonStatus};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PAGE: usize = 100;

pub struct ScimSource {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ScimSource {
    pub fn new(base: String, token: String) -> ScimSource {
        ScimSource {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: super::http::client(),
        }
    }

    /// Every resource of a listing; an empty page before `totalResults` fails the read.
    async fn list(&self, resource: &str) -> Result<Vec<Value>, IdentityError> {
        let mut items: Vec<Value> = Vec::new();
        loop {
            let start = items.len() + 1;
            let call = format!("GET /{resource}?startIndex={start}&count={PAGE}");
            let url = format!("{}/{resource}", self.base);
            let fetched = get_json(&self.base, &call, || {
                self.http
                    .get(&url)
                    .bearer_auth(&self.token)
                    .header("accept", "application/scim+json, application/json")
                    .query(&[
                        ("startIndex", start.to_string()),
                        ("count", PAGE.to_string()),
                    ])
            })
            .await?;
            let total = fetched
                .body
                .get("totalResults")
                .and_then(Value::as_u64)
                .ok_or_else(|| IdentityError::Call {
                    source_name: self.base.clone(),
                    call: call.clone(),
                    message: "the answer has no totalResults; is this a SCIM 2.0 list endpoint?"
                        .into(),
                })? as usize;
            let page = fetched
                .body
                .get("Resources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if page.is_empty() && items.len() < total {
                return Err(IdentityError::Call {
                    source_name: self.base.clone(),
                    call,
                    message: format!(
                        "an empty page after {} of {total} resources: the directory changed while it was read; read again",
                        items.len()
                    ),
                });
            }
            items.extend(page);
            if items.len() >= total {
                return Ok(items);
            }
        }
    }
}

fn primary_email(user: &Value) -> Option<String> {
    let emails = user.get("emails")?.as_array()?;
    let chosen = emails
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| emails.first())?;
    chosen
        .get("value")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
}

impl IdentitySource for ScimSource {
    /// Lists users and groups at once; refuses an empty or inconsistent listing.
    async fn read(&self) -> Result<Directory, IdentityError> {
        let (users, groups) = tokio::try_join!(self.list("Users"), self.list("Groups"))?;
        if users.is_empty() {
            return Err(self.inconsistent(
                "the server lists nobody; an empty directory is refused rather than read as \"everyone left\"".into(),
            ));
        }
        let email_of = self.emails_by_id(&users)?;
        let people = users.iter().map(|user| person(user, &email_of)).collect();
        Ok(Directory {
            source: self.base.clone(),
            people,
            groups: self.groups(&groups, &email_of)?,
        }
        .normalise())
    }
}

impl ScimSource {
    fn inconsistent(&self, message: String) -> IdentityError {
        IdentityError::Read {
            source_name: self.base.clone(),
            message,
        }
    }

    /// Each user's email by SCIM id: the primary email, else a `userName` that is one.
    fn emails_by_id(&self, users: &[Value]) -> Result<BTreeMap<String, String>, IdentityError> {
        let mut email_of = BTreeMap::new();
        for user in users {
            let id = text(user, "/id");
            let email = primary_email(user)
                .or_else(|| Some(text(user, "/userName")).filter(|n| n.contains('@')))
                .ok_or_else(|| {
                    self.inconsistent(format!(
                        "user {id} has no email; slack-gitops matches people by email"
                    ))
                })?;
            email_of.insert(id, email);
        }
        Ok(email_of)
    }

    /// The groups with their members' emails and nested groups' names. A member that is
    /// neither a listed user nor a listed group means the listing changed while read.
    fn groups(
        &self,
        groups: &[Value],
        email_of: &BTreeMap<String, String>,
    ) -> Result<Vec<Group>, IdentityError> {
        let group_names: BTreeMap<String, String> = groups
            .iter()
            .map(|g| (text(g, "/id"), text(g, "/displayName")))
            .collect();
        let mut directory_groups = Vec::new();
        for group in groups {
            let name = text(group, "/displayName");
            let mut members = BTreeSet::new();
            let mut nested = BTreeSet::new();
            let listed = group.get("members").and_then(Value::as_array);
            for member in listed.into_iter().flatten() {
                let value = text(member, "/value");
                let is_group = text(member, "/type").eq_ignore_ascii_case("group")
                    || text(member, "/$ref").contains("/Groups/")
                    || group_names.contains_key(&value);
                if is_group {
                    let nested_name = group_names.get(&value).cloned().ok_or_else(|| {
                        self.inconsistent(format!("group `{name}` nests group {value}, which the listing does not have; read again"))
                    })?;
                    nested.insert(nested_name);
                } else {
                    let email = email_of.get(&value).cloned().ok_or_else(|| {
                        self.inconsistent(format!("group `{name}` lists member {value}, who is not among the users; read again"))
                    })?;
                    members.insert(email);
                }
            }
            directory_groups.push(Group {
                name,
                description: String::new(),
                members: members.into_iter().collect(),
                groups: nested.into_iter().collect(),
            });
        }
        Ok(directory_groups)
    }
}

/// A SCIM user as a person: names, title, the enterprise extension's department and
/// manager (by the manager's email), suspended when `active` is false.
fn person(user: &Value, email_of: &BTreeMap<String, String>) -> Person {
    let enterprise = user.get(ENTERPRISE);
    let manager = enterprise
        .and_then(|e| e.pointer("/manager/value"))
        .and_then(Value::as_str)
        .and_then(|id| email_of.get(id).cloned());
    Person {
        email: email_of[&text(user, "/id")].clone(),
        given_name: text(user, "/name/givenName"),
        family_name: text(user, "/name/familyName"),
        title: text(user, "/title"),
        department: enterprise
            .map(|e| text(e, "/department"))
            .unwrap_or_default(),
        manager,
        status: if user.get("active") == Some(&Value::Bool(false)) {
            PersonStatus::Suspended
        } else {
            PersonStatus::Active
        },
    }
}
