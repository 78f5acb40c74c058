//! Slack's replies as typed values: what the listings of a read deserialize into, page by
//! page, straight from the response text. Only the fields the live model uses are kept;
//! everything else is skipped by the parser, never built into a `serde_json::Value`.
//! Scalars are lenient (`null` or absent reads as empty), as the `Value` reading was.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::model::live::{GuestKind, LiveChannel, LiveIdpGroup, LiveUser};

/// A SCIM user resource.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScimUser {
    pub id: Option<String>,
    #[serde(rename = "userName")]
    pub user_name: Option<String>,
    pub emails: Option<Vec<ScimEmail>>,
    pub name: Option<ScimName>,
    pub title: Option<String>,
    pub active: Option<bool>,
    #[serde(rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")]
    pub enterprise: Option<Enterprise>,
    #[serde(rename = "urn:ietf:params:scim:schemas:extension:slack:guest:2.0:User")]
    pub guest: Option<GuestExtension>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScimEmail {
    pub value: Option<String>,
    pub primary: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScimName {
    #[serde(rename = "givenName")]
    pub given_name: Option<String>,
    #[serde(rename = "familyName")]
    pub family_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Enterprise {
    pub department: Option<String>,
    pub manager: Option<Manager>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Manager {
    #[serde(rename = "managerId")]
    pub manager_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GuestExtension {
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A person's flags from the Web API (`admin.users.list` or `users.list`): roles, guest
/// kind, bot, workspaces.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserFlags {
    pub id: Option<String>,
    pub is_admin: Option<bool>,
    pub is_owner: Option<bool>,
    pub is_primary_owner: Option<bool>,
    pub is_restricted: Option<bool>,
    pub is_ultra_restricted: Option<bool>,
    pub is_bot: Option<bool>,
    pub workspaces: Option<Vec<String>>,
    pub team_id: Option<String>,
}

/// A SCIM group (an IdP group pushed to Slack).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScimGroup {
    pub id: Option<String>,
    #[serde(rename = "displayName")]
    pub display_name: Option<String>,
    pub members: Option<Vec<ScimMember>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScimMember {
    pub value: Option<String>,
}

/// A channel from `conversations.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Channel {
    pub id: Option<String>,
    pub name: Option<String>,
    pub is_private: Option<bool>,
    pub is_archived: Option<bool>,
    pub num_members: Option<u64>,
}

/// A SCIM list response's page.
#[derive(Debug, Deserialize)]
pub struct ScimPage<T> {
    #[serde(rename = "totalResults")]
    pub total: Option<u64>,
    #[serde(rename = "Resources", default = "Vec::new")]
    pub resources: Vec<T>,
}

/// A cursor-paginated Web API page: the list under its key and the next cursor.
#[derive(Debug)]
pub struct WebPage<T> {
    /// `None` when the reply has no list under the key.
    pub items: Option<Vec<T>>,
    pub next_cursor: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    next_cursor: Option<String>,
}

/// Deserializes a [`WebPage`] whose list is under `key` (`users`, `channels`,
/// `members`), skipping every other field without building it.
pub struct WebPageSeed<'k, T> {
    pub key: &'k str,
    pub item: std::marker::PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for WebPageSeed<'_, T> {
    type Value = WebPage<T>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for WebPageSeed<'_, T> {
    type Value = WebPage<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a Web API reply with a `{}` list", self.key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut page = WebPage {
            items: None,
            next_cursor: String::new(),
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.key {
                page.items = Some(map.next_value()?);
            } else if key == "response_metadata" {
                let metadata: Option<Metadata> = map.next_value()?;
                page.next_cursor = metadata.and_then(|m| m.next_cursor).unwrap_or_default();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(page)
    }
}

/// A SCIM user as a [`LiveUser`], with the Web API's flags when known.
pub fn live_user(resource: ScimUser, flags: Option<&UserFlags>) -> LiveUser {
    let email = resource
        .emails
        .as_deref()
        .and_then(|emails| {
            emails
                .iter()
                .find(|e| e.primary == Some(true))
                .or_else(|| emails.first())
        })
        .and_then(|e| e.value.as_deref())
        .map(str::to_lowercase)
        .unwrap_or_default();
    let flag = |get: fn(&UserFlags) -> Option<bool>| flags.and_then(get).unwrap_or(false);
    let guest = match resource.guest.as_ref().and_then(|g| g.kind.as_deref()) {
        Some("single") => Some(GuestKind::Single),
        Some(_) => Some(GuestKind::Multi),
        None if flag(|f| f.is_ultra_restricted) => Some(GuestKind::Single),
        None if flag(|f| f.is_restricted) => Some(GuestKind::Multi),
        None => None,
    };
    let workspaces = flags
        .map(|f| {
            f.workspaces
                .iter()
                .flatten()
                .cloned()
                .chain(f.team_id.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        })
        .unwrap_or_default();
    let (given_name, family_name) = resource
        .name
        .map(|n| (n.given_name, n.family_name))
        .unwrap_or_default();
    let (department, manager) = resource
        .enterprise
        .map(|e| (e.department, e.manager.and_then(|m| m.manager_id)))
        .unwrap_or_default();
    LiveUser {
        id: resource.id.unwrap_or_default(),
        email,
        user_name: resource.user_name.unwrap_or_default(),
        given_name: given_name.unwrap_or_default(),
        family_name: family_name.unwrap_or_default(),
        title: resource.title.unwrap_or_default(),
        department: department.unwrap_or_default(),
        manager: manager.filter(|id| !id.is_empty()),
        active: resource.active.unwrap_or(false),
        admin: flag(|f| f.is_admin),
        owner: flag(|f| f.is_owner),
        primary_owner: flag(|f| f.is_primary_owner),
        guest,
        bot: flag(|f| f.is_bot),
        workspaces,
    }
}

/// An IdP group as the live model keeps it.
pub fn live_idp_group(group: ScimGroup) -> LiveIdpGroup {
    LiveIdpGroup {
        id: group.id.unwrap_or_default(),
        name: group.display_name.unwrap_or_default(),
        members: group
            .members
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.value.unwrap_or_default())
            .collect(),
    }
}

/// A channel of `team` as the live model keeps it, with its members when they were read.
pub fn live_channel(team: String, channel: Channel, members: Option<Vec<String>>) -> LiveChannel {
    LiveChannel {
        id: channel.id.unwrap_or_default(),
        workspace: team,
        name: channel.name.unwrap_or_default(),
        private: channel.is_private.unwrap_or(false),
        archived: channel.is_archived.unwrap_or(false),
        members,
        num_members: channel.num_members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    const GUEST: &str = "urn:ietf:params:scim:schemas:extension:slack:guest:2.0:User";

    #[test]
    fn a_page_keeps_its_list_and_cursor_and_skips_the_rest() {
        let text = r#"{"ok":true,"warning":"x","members":["U1","U2"],"response_metadata":{"next_cursor":"abc","messages":[]}}"#;
        let seed = WebPageSeed::<String> {
            key: "members",
            item: std::marker::PhantomData,
        };
        let page = seed
            .deserialize(&mut serde_json::Deserializer::from_str(text))
            .unwrap();
        assert_eq!(page.items.unwrap(), ["U1", "U2"]);
        assert_eq!(page.next_cursor, "abc");
        let seed = WebPageSeed::<String> {
            key: "channels",
            item: std::marker::PhantomData,
        };
        let page = seed
            .deserialize(&mut serde_json::Deserializer::from_str(r#"{"ok":true}"#))
            .unwrap();
        assert!(page.items.is_none() && page.next_cursor.is_empty());
    }

    #[test]
    fn a_scim_user_reads_as_before_nulls_included() {
        let text = format!(
            r#"{{"id":"W1","userName":"ada","emails":[{{"value":"x@a.example"}},{{"value":"Ada@Acme.example","primary":true}}],
               "name":{{"givenName":"Ada","familyName":null}},"title":null,"active":true,
               "{ENTERPRISE}":{{"department":"Eng","manager":{{"managerId":""}}}},"{GUEST}":{{"type":"single"}}}}"#
        );
        let user: ScimUser = serde_json::from_str(&text).unwrap();
        let flags: UserFlags = serde_json::from_str(
            r#"{"id":"W1","is_admin":true,"workspaces":["T2"],"team_id":"T1"}"#,
        )
        .unwrap();
        let live = live_user(user, Some(&flags));
        assert_eq!(live.email, "ada@acme.example");
        assert_eq!(live.given_name, "Ada");
        assert_eq!(live.family_name, "");
        assert_eq!(live.department, "Eng");
        assert_eq!(live.manager, None);
        assert_eq!(live.guest, Some(GuestKind::Single));
        assert!(live.admin && live.active && !live.owner);
        assert_eq!(live.workspaces, ["T1", "T2"]);
    }
}
