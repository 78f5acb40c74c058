//! The `entra` identity source: Microsoft Graph with an application's client credentials.
//! Users from `/v1.0/users`, groups from `/v1.0/groups`, direct members from
//! `/v1.0/groups/{id}/members` (users and nested groups, told apart by `@odata.type`),
//! each paged by `@odata.nextLink`. Graph throttles with 429 and `Retry-After`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::http::get_json;
use super::{IdentityError, IdentitySource};
use crate::model::directory::{Directory, Group, Person, PersonStatus};

pub struct EntraSource {
    tenant: String,
    client_id: String,
    client_secret: String,
    login_base: String,
    graph_base: String,
    http: reqwest::Client,
    /// The groups whose members are read, with their nested groups (`None`: all).
    members_of: Option<std::collections::BTreeSet<String>>,
}

impl EntraSource {
    /// `base` replaces both `https://login.microsoftonline.com` and
    /// `https://graph.microsoft.com` (for a local fake or a national cloud proxy).
    pub fn new(
        tenant: String,
        client_id: String,
        client_secret: String,
        base: Option<String>,
    ) -> EntraSource {
        let base = base.map(|b| b.trim_end_matches('/').to_string());
        EntraSource {
            tenant,
            client_id,
            client_secret,
            login_base: base
                .clone()
                .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
            graph_base: base.unwrap_or_else(|| "https://graph.microsoft.com".into()),
            http: super::http::client(),
            members_of: None,
        }
    }

    fn name(&self) -> String {
        format!("entra tenant {}", self.tenant)
    }

    async fn access_token(&self) -> Result<String, IdentityError> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.login_base, self.tenant);
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ];
        let fetched = get_json(&self.name(), "POST /oauth2/v2.0/token", || {
            self.http.post(&url).form(&form)
        })
        .await?;
        fetched
            .body
            .get("access_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| IdentityError::Call {
                source_name: self.name(),
                call: "POST /oauth2/v2.0/token".into(),
                message: "no access_token in the answer; check the tenant, client id and secret"
                    .into(),
            })
    }

    async fn list(&self, token: &str, path: &str) -> Result<Vec<Value>, IdentityError> {
        let mut items = Vec::new();
        let mut url = format!("{}{path}", self.graph_base);
        loop {
            let call = format!("GET {}", url.trim_start_matches(&self.graph_base));
            let fetched = get_json(&self.name(), &call, || {
                self.http.get(&url).bearer_auth(token)
            })
            .await?;
            let page = fetched
                .body
                .get("value")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| IdentityError::Call {
                    source_name: self.name(),
                    call: call.clone(),
                    message: "the answer has no `value` list".into(),
                })?;
            items.extend(page);
            match fetched.body.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => url = next.to_string(),
                None => return Ok(items),
            }
        }
    }
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl IdentitySource for EntraSource {
    /// Lists users and groups at once, then each group's members; refuses an empty or
    /// inconsistent listing.
    async fn read(&self) -> Result<Directory, IdentityError> {
        let token = self.access_token().await?;
        let (users, groups) = tokio::try_join!(
            self.list(&token, "/v1.0/users?$select=id,mail,userPrincipalName,givenName,surname,jobTitle,department,accountEnabled&$expand=manager($select=id)&$top=999"),
            self.list(&token, "/v1.0/groups?$select=id,displayName,description&$top=999")
        )?;
        if users.is_empty() {
            return Err(self.inconsistent(
                "Graph lists nobody; an empty directory is refused rather than read as \"everyone left\"".into(),
            ));
        }
        let email_of: BTreeMap<String, String> = users
            .iter()
            .map(|u| {
                let mail = Some(text(u, "mail"))
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| text(u, "userPrincipalName"));
                (text(u, "id"), mail.to_lowercase())
            })
            .collect();
        let people = users.iter().map(|user| person(user, &email_of)).collect();
        let group_names: BTreeMap<String, String> = groups
            .iter()
            .map(|g| (text(g, "id"), text(g, "displayName")))
            .collect();
        let names = (&group_names, &email_of);
        let directory_groups = self.read_groups(&token, &groups, names).await?;
        Ok(Directory {
            source: self.name(),
            people,
            groups: directory_groups,
        }
        .normalise())
    }
}

impl EntraSource {
    /// One person's view, for an identity event: the user by mail or user principal name
    /// (`/v1.0/users?$filter=...`) and every group they are in, nested ones resolved by
    /// Graph (`/v1.0/users/{id}/transitiveMemberOf`). A directory of that person (none
    /// when Entra does not know them) and each of their groups with them alone: three
    /// calls (the token included), whatever the size of the tenant.
    pub async fn read_person(&self, email: &str) -> Result<Directory, IdentityError> {
        let token = self.access_token().await?;
        let quoted = email.replace('\'', "''");
        let filter = format!("mail eq '{quoted}' or userPrincipalName eq '{quoted}'");
        let filter = serde_urlencoded::to_string([("$filter", filter.as_str())])
            .unwrap_or_default()
            .replace('+', "%20");
        let users = self
            .list(
                &token,
                &format!("/v1.0/users?{filter}&$select=id,mail,userPrincipalName,givenName,surname,jobTitle,department,accountEnabled"),
            )
            .await?;
        let Some(user) = users.first() else {
            return Ok(Directory {
                source: self.name(),
                ..Directory::default()
            });
        };
        let id = text(user, "id");
        let mail = Some(text(user, "mail"))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| text(user, "userPrincipalName"))
            .to_lowercase();
        let groups = self
            .list(
                &token,
                &format!("/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group?$select=displayName,description"),
            )
            .await?;
        let groups = groups
            .iter()
            .map(|g| (text(g, "displayName"), text(g, "description")))
            .collect();
        let email_of = BTreeMap::from([(id, mail)]);
        Ok(super::one_person(
            self.name(),
            person(user, &email_of),
            groups,
        ))
    }

    /// Reads the groups' members: every group's, or (with `reading_members_of`) those of
    /// the groups the config names and of the groups nested in them, however deep. Any
    /// other group is listed by name with no members.
    async fn read_groups(
        &self,
        token: &str,
        groups: &[Value],
        names: (&BTreeMap<String, String>, &BTreeMap<String, String>),
    ) -> Result<Vec<Group>, IdentityError> {
        let Some(wanted) = &self.members_of else {
            let mut read = Vec::new();
            for group in groups {
                read.push(self.group(token, group, names).await?);
            }
            return Ok(read);
        };
        let mut queue: Vec<String> = wanted.iter().cloned().collect();
        let mut read: BTreeMap<String, Group> = BTreeMap::new();
        while let Some(name) = queue.pop() {
            if read.contains_key(&name) {
                continue;
            }
            let Some(group) = groups.iter().find(|g| text(g, "displayName") == name) else {
                continue;
            };
            let group = self.group(token, group, names).await?;
            queue.extend(group.groups.iter().cloned());
            read.insert(name, group);
        }
        tracing::info!(
            groups = groups.len(),
            members_read = read.len(),
            skipped = groups.len() - read.len(),
            "read Entra: members of the groups the config names and their nested groups"
        );
        Ok(groups
            .iter()
            .map(|group| {
                let name = text(group, "displayName");
                read.remove(&name).unwrap_or_else(|| Group {
                    name,
                    description: text(group, "description"),
                    members: Vec::new(),
                    groups: Vec::new(),
                })
            })
            .collect())
    }

    /// Reads the members of these groups and the groups nested in them only.
    pub fn reading_members_of(mut self, groups: std::collections::BTreeSet<String>) -> Self {
        self.members_of = Some(groups);
        self
    }

    fn inconsistent(&self, message: String) -> IdentityError {
        IdentityError::Read {
            source_name: self.name(),
            message,
        }
    }

    /// One group with its members read: users by email, nested groups by name.
    async fn group(
        &self,
        token: &str,
        group: &Value,
        (group_names, email_of): (&BTreeMap<String, String>, &BTreeMap<String, String>),
    ) -> Result<Group, IdentityError> {
        let id = text(group, "id");
        let name = text(group, "displayName");
        let path = format!("/v1.0/groups/{id}/members?$select=id&$top=999");
        let members = self.list(token, &path).await?;
        let mut emails = Vec::new();
        let mut nested = Vec::new();
        for member in members {
            let member_id = text(&member, "id");
            match text(&member, "@odata.type").as_str() {
                "#microsoft.graph.group" => nested.push(group_names.get(&member_id).cloned().ok_or_else(|| {
                    self.inconsistent(format!("group `{name}` nests group {member_id}, which the listing does not have; read again"))
                })?),
                "#microsoft.graph.user" => emails.push(email_of.get(&member_id).cloned().ok_or_else(|| {
                    self.inconsistent(format!("group `{name}` lists user {member_id}, who is not among the users; read again"))
                })?),
                // Devices, service principals and contacts have no Slack account.
                _ => {}
            }
        }
        Ok(Group {
            name,
            description: text(group, "description"),
            members: emails,
            groups: nested,
        })
    }
}

/// A Graph user as a person: suspended when `accountEnabled` is false, the manager by
/// email.
fn person(user: &Value, email_of: &BTreeMap<String, String>) -> Person {
    Person {
        email: email_of[&text(user, "id")].clone(),
        given_name: text(user, "givenName"),
        family_name: text(user, "surname"),
        title: text(user, "jobTitle"),
        department: text(user, "department"),
        manager: user
            .get("manager")
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .and_then(|id| email_of.get(id).cloned()),
        status: if user.get("accountEnabled") == Some(&Value::Bool(false)) {
            PersonStatus::Suspended
        } else {
            PersonStatus::Active
        },
    }
}
