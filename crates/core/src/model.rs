//! Validated domain values.
//!
//! Raw config types mirror the YAML; the values in them that have rules (a usergroup
//! handle, a channel name, an email, a Slack team id, a plan hash) are newtypes defined
//! here, so code past the loader cannot hold a malformed one. Each newtype's rule exists
//! twice on purpose: as a regular expression in the JSON schema (editors validate while
//! typing) and as plain Rust in `is_valid`; a property test keeps the two in agreement.

pub mod directory;
pub mod limits;
pub mod live;
pub mod snapshot;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Lower-case hex of a digest, as plan hashes and mapping digests are written.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

macro_rules! checked_string {
    (
        $(#[doc = $doc:literal])*
        $name:ident, pattern = $pattern:literal, what = $what:literal, normalise = $normalise:expr
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The JSON Schema `pattern` for this value.
            pub const PATTERN: &'static str = $pattern;
            /// What this value is, for messages ("a usergroup handle").
            pub const WHAT: &'static str = $what;

            /// Checks and normalises `text`.
            pub fn parse(text: &str) -> Result<$name, InvalidValue> {
                let normalise: fn(&str) -> String = $normalise;
                let value = normalise(text);
                if Self::is_valid(&value) {
                    Ok($name(value))
                } else {
                    Err(InvalidValue {
                        what: $what,
                        text: text.to_string(),
                    })
                }
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": concat!("A ", $what, ".")
                })
            }
        }
    };
}

/// A value that breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a valid {what}")]
pub struct InvalidValue {
    pub what: &'static str,
    pub text: String,
}

fn keep(text: &str) -> String {
    text.to_string()
}

fn lowercase(text: &str) -> String {
    text.to_lowercase()
}

checked_string! {
    /// A usergroup mention handle (`@eng`): lowercase letters, digits, `.`, `_` and `-`,
    /// starting with a letter or digit, at most 21 characters.
    Handle, pattern = "^[a-z0-9][a-z0-9._-]{0,20}$", what = "usergroup handle", normalise = keep
}

checked_string! {
    /// A channel name: lowercase letters, digits, `-` and `_`, at most 80 characters.
    ChannelName, pattern = "^[a-z0-9_-]{1,80}$", what = "channel name", normalise = keep
}

checked_string! {
    /// An email address, compared and stored in lowercase.
    Email, pattern = "^[^@\\s]+@[^@\\s.]+(\\.[^@\\s.]+)+$", what = "email address", normalise = lowercase
}

checked_string! {
    /// A Slack workspace (`T...`) or organisation (`E...`) id.
    TeamId, pattern = "^[TE][A-Z0-9]{2,}$", what = "Slack team id", normalise = keep
}

checked_string! {
    /// The hash of a plan's destructive action set, as `sha256:` and 64 hex digits.
    PlanHash, pattern = "^sha256:[0-9a-f]{64}$", what = "plan hash", normalise = keep
}

impl Handle {
    pub(crate) fn is_valid(text: &str) -> bool {
        let mut chars = text.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        first_ok
            && text.chars().count() <= 21
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    }
}

impl ChannelName {
    pub(crate) fn is_valid(text: &str) -> bool {
        (1..=80).contains(&text.chars().count())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    }
}

impl Email {
    fn is_valid(text: &str) -> bool {
        let bad = |c: char| c == '@' || c.is_whitespace();
        let Some((local, domain)) = text.split_once('@') else {
            return false;
        };
        let labels: Vec<&str> = domain.split('.').collect();
        !local.is_empty()
            && !local.chars().any(bad)
            && labels.len() >= 2
            && labels
                .iter()
                .all(|label| !label.is_empty() && !label.chars().any(bad))
    }
}

impl TeamId {
    fn is_valid(text: &str) -> bool {
        let mut chars = text.chars();
        matches!(chars.next(), Some('T' | 'E'))
            && text.len() >= 3
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    }
}

impl PlanHash {
    fn is_valid(text: &str) -> bool {
        text.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a unix-milliseconds time (UTC). Dates and times are jiff's
/// everywhere: this module is their one home, so no calendar arithmetic is written twice.
pub fn iso_time(millis: i64) -> String {
    timestamp(millis).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `YYYY-MM-DD` of a unix-milliseconds time (UTC).
pub fn iso_date(millis: i64) -> String {
    timestamp(millis).strftime("%Y-%m-%d").to_string()
}

/// Unix milliseconds of a `YYYY-MM-DD` date at UTC midnight; `None` when `text` is not a
/// date.
pub fn date_millis(text: &str) -> Option<i64> {
    let date: jiff::civil::Date = text.parse().ok()?;
    let midnight = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?;
    Some(midnight.timestamp().as_millisecond())
}

/// Unix milliseconds of an RFC 3339 time (`2026-12-04T17:00:00Z`, any offset).
pub fn rfc3339_millis(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

fn timestamp(millis: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(millis).unwrap_or(if millis < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn schema_accepts(pattern: &str, text: &str) -> bool {
        let schema = serde_json::json!({"type": "string", "pattern": pattern});
        jsonschema::draft202012::new(&schema)
            .unwrap()
            .is_valid(&serde_json::json!(text))
    }

    proptest! {
        #[test]
        fn rust_rules_agree_with_schema_patterns(text in "[a-zA-Z0-9@._ ~-]{0,90}") {
            prop_assert_eq!(Handle::is_valid(&text), schema_accepts(Handle::PATTERN, &text));
            prop_assert_eq!(ChannelName::is_valid(&text), schema_accepts(ChannelName::PATTERN, &text));
            prop_assert_eq!(Email::is_valid(&text), schema_accepts(Email::PATTERN, &text));
            prop_assert_eq!(TeamId::is_valid(&text), schema_accepts(TeamId::PATTERN, &text));
            prop_assert_eq!(PlanHash::is_valid(&text), schema_accepts(PlanHash::PATTERN, &text));
        }

        #[test]
        fn emails_of_the_usual_shape_agree(local in "[a-z.]{1,8}", domain in "[a-z]{1,5}(\\.[a-z]{0,3}){0,3}") {
            let text = format!("{local}@{domain}");
            prop_assert_eq!(Email::is_valid(&text), schema_accepts(Email::PATTERN, &text));
        }
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(
            Email::parse("Ada@Acme.Example").unwrap().as_str(),
            "ada@acme.example"
        );
        assert!(Handle::parse("eng-oncall").is_ok());
        assert!(Handle::parse("Eng").is_err());
        assert!(Handle::parse("a-handle-that-is-far-too-long").is_err());
        assert!(ChannelName::parse("eng announce").is_err());
        assert!(TeamId::parse("T0000MAIN").is_ok());
        assert!(PlanHash::parse(&format!("sha256:{}", "ab".repeat(32))).is_ok());
        assert!(PlanHash::parse("sha256:xyz").is_err());
    }
}
