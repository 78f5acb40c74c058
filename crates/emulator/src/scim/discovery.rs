//! Discovery: ServiceProviderConfig, ResourceTypes and Schemas.

use super::*;

pub(super) fn service_provider_config() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://docs.slack.dev/reference/scim-api",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": 1000},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication scheme using the OAuth Bearer Token Standard",
            "primary": true,
        }],
    })
}

pub(super) fn resource_types(base: &str) -> Value {
    let users = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User", "name": "User", "endpoint": "/Users", "schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": ENTERPRISE, "required": false}, {"schema": GUEST, "required": false}],
        "meta": {"location": format!("{base}/ResourceTypes/User"), "resourceType": "ResourceType"},
    });
    let groups = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "Group", "name": "Group", "endpoint": "/Groups", "schema": GROUP_SCHEMA,
        "meta": {"location": format!("{base}/ResourceTypes/Group"), "resourceType": "ResourceType"},
    });
    json!({"schemas": [LIST], "totalResults": 2, "itemsPerPage": 2, "startIndex": 1, "Resources": [users, groups]})
}

/// The schemas `/ResourceTypes` names: the core User and Group, and the User's enterprise
/// and guest extensions, each with its `meta`.
pub(super) fn schemas(base: &str) -> Vec<Value> {
    let attribute = |name: &str, kind: &str, required: bool| json!({"name": name, "type": kind, "multiValued": false, "required": required, "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"});
    let complex = |name: &str, multi: bool, required: bool| json!({"name": name, "type": "complex", "multiValued": multi, "required": required, "mutability": "readWrite", "returned": "default", "uniqueness": "none"});
    let schema = |id: &str, name: &str, description: &str, attributes: Vec<Value>| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": id, "name": name, "description": description, "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
        })
    };
    vec![
        schema(
            USER_SCHEMA,
            "User",
            "User Account",
            vec![
                attribute("userName", "string", true),
                attribute("displayName", "string", false),
                attribute("title", "string", false),
                attribute("active", "boolean", false),
                complex("emails", true, true),
                complex("name", false, false),
            ],
        ),
        schema(
            GROUP_SCHEMA,
            "Group",
            "Group",
            vec![
                attribute("displayName", "string", true),
                // Slack lists each member as `{value, display}`.
                {
                    let mut members = complex("members", true, false);
                    members["subAttributes"] = json!([
                        attribute("value", "string", false),
                        attribute("display", "string", false),
                    ]);
                    members
                },
            ],
        ),
        schema(
            ENTERPRISE,
            "EnterpriseUser",
            "Enterprise User",
            vec![
                attribute("employeeNumber", "string", false),
                attribute("costCenter", "string", false),
                attribute("organization", "string", false),
                attribute("division", "string", false),
                attribute("department", "string", false),
                complex("manager", false, false),
            ],
        ),
        schema(
            GUEST,
            "SlackGuest",
            "Slack guest",
            vec![
                attribute("type", "string", false),
                attribute("expiration", "dateTime", false),
            ],
        ),
    ]
}
