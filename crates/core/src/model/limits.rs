//! Slack's published rate limits: the Web API tier of each method we call, and SCIM's
//! org-wide and per-endpoint buckets. The client paces itself by these, and the emulator
//! enforces them, so both read the same table.

/// A Web API rate-limit tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// 1+ per minute.
    Tier1,
    /// 20+ per minute.
    Tier2,
    /// 50+ per minute.
    Tier3,
    /// 100+ per minute.
    Tier4,
    /// Method-specific; `auth.test` allows hundreds per minute.
    Special,
    /// `chat.postMessage`: about one message a second per channel, short bursts allowed.
    PerChannel,
}

impl Tier {
    /// The tier's key in the emulator's settings.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Tier1 => "tier1",
            Tier::Tier2 => "tier2",
            Tier::Tier3 => "tier3",
            Tier::Tier4 => "tier4",
            Tier::Special => "special",
            Tier::PerChannel => "per-channel",
        }
    }

    /// Slack's published floor, in calls per minute.
    pub fn per_minute(self) -> f64 {
        match self {
            Tier::Tier1 => 1.0,
            Tier::Tier2 => 20.0,
            Tier::Tier3 => 50.0,
            Tier::Tier4 => 100.0,
            Tier::Special => 600.0,
            Tier::PerChannel => 60.0,
        }
    }
}

/// The tier of a Web API method (Tier 2, the most common, for methods not listed).
pub fn web_tier(method: &str) -> Tier {
    match method {
        "auth.test" => Tier::Special,
        "chat.postMessage" => Tier::PerChannel,
        "admin.usergroups.addChannels" => Tier::Tier1,
        "users.info" | "conversations.members" | "admin.users.list" => Tier::Tier4,
        "users.lookupByEmail"
        | "conversations.info"
        | "conversations.invite"
        | "conversations.kick"
        | "conversations.join"
        | "apps.connections.open" => Tier::Tier3,
        _ => Tier::Tier2,
    }
}

/// A token bucket: sustained rate and burst.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimBucket {
    pub name: String,
    pub per_minute: f64,
    pub burst: f64,
}

/// The SCIM buckets a request counts against: the org-wide read or write bucket, and the
/// endpoint's own bucket when it has one (list endpoints do not). `segments` is the path
/// after `/scim/v2/`.
pub fn scim_buckets(method: &str, segments: &[&str]) -> Vec<ScimBucket> {
    let bucket = |name: &str, per_minute: f64, burst: f64| ScimBucket {
        name: name.to_string(),
        per_minute,
        burst,
    };
    let mut buckets = vec![if method == "GET" {
        bucket("reads", 1000.0, 1000.0)
    } else {
        bucket("writes", 600.0, 180.0)
    }];
    match (method, segments) {
        ("GET", [kind @ ("Users" | "Groups"), _]) => {
            buckets.push(bucket(&format!("GET /{kind}/{{id}}"), 300.0, 300.0))
        }
        ("POST", [kind @ ("Users" | "Groups")]) => {
            buckets.push(bucket(&format!("POST /{kind}"), 180.0, 20.0))
        }
        ("PUT" | "PATCH", ["Groups", _]) => {
            buckets.push(bucket("PUT/PATCH /Groups/{id}", 180.0, 80.0))
        }
        ("PUT" | "PATCH", ["Users", _]) => {
            buckets.push(bucket("PUT/PATCH /Users/{id}", 180.0, 20.0))
        }
        ("DELETE", [kind @ ("Users" | "Groups"), _]) => {
            buckets.push(bucket(&format!("DELETE /{kind}/{{id}}"), 180.0, 20.0))
        }
        _ => {}
    }
    buckets
}
