//! JSON schemas for the four file kinds, and the mapping of schema errors to diagnostics.
//!
//! The schemas are generated from `config::types` and committed under `schema/` (a test
//! fails when the committed copy is stale), so editors can validate while typing. Each
//! schema error's instance path is looked up in the file's [`SpanIndex`]: unknown keys
//! point at the key, missing keys at the mapping that lacks them, everything else at the
//! offending value.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind as ErrorKind;
use serde_json::Value;

use super::types::{ApprovalFile, ConfigFile, MappingsFile, PolicyFile};
use super::yaml::{SpanIndex, pointer_push};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{ChannelName, Email, Handle, PlanHash, TeamId};

/// The four kinds of file in a config repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Config,
    Mappings,
    Policy,
    Approval,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Config, Kind::Mappings, Kind::Policy, Kind::Approval];

    /// The kind's name as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Config => "Config",
            Kind::Mappings => "Mappings",
            Kind::Policy => "Policy",
            Kind::Approval => "Approval",
        }
    }

    /// Reads a `kind:` value, accepting any letter case on the command line.
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text))
    }

    /// The file name of the committed schema, under `schema/`.
    pub fn schema_file_name(self) -> String {
        format!("{}.schema.json", self.as_str().to_lowercase())
    }

    /// The kind's JSON schema (draft 2020-12).
    pub fn schema(self) -> &'static Value {
        &SCHEMAS[self as usize].0
    }

    fn validator(self) -> &'static jsonschema::Validator {
        &SCHEMAS[self as usize].1
    }
}

static SCHEMAS: LazyLock<Vec<(Value, jsonschema::Validator)>> = LazyLock::new(|| {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            let schema = generate(kind);
            let validator = jsonschema::draft202012::new(&schema)
                .expect("the generated schemas are valid draft 2020-12");
            (schema, validator)
        })
        .collect()
});

fn generate(kind: Kind) -> Value {
    let schema = match kind {
        Kind::Config => schemars::schema_for!(ConfigFile),
        Kind::Mappings => schemars::schema_for!(MappingsFile),
        Kind::Policy => schemars::schema_for!(PolicyFile),
        Kind::Approval => schemars::schema_for!(ApprovalFile),
    };
    let mut value = schema.to_value();
    strip_nullable(&mut value);
    value
}

/// `Option<T>` fields are optional, not nullable: `key:` with no value in YAML is almost
/// always a mistake, so the schema rejects `null` and the error names the expected type.
fn strip_nullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any_of)) = map.get("anyOf") {
                let non_null: Vec<Value> = any_of
                    .iter()
                    .filter(|s| s.get("type") != Some(&Value::from("null")))
                    .cloned()
                    .collect();
                if non_null.len() == 1 && any_of.len() == 2 {
                    map.remove("anyOf");
                    if let Value::Object(inner) = &non_null[0] {
                        for (key, value) in inner {
                            map.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(strip_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nullable),
        _ => {}
    }
}

/// Renders a schema as committed: pretty JSON with a trailing newline.
pub fn schema_text(kind: Kind) -> String {
    let mut text = serde_json::to_string_pretty(kind.schema()).expect("a Value always serialises");
    text.push('\n');
    text
}

/// Validates `value` against the kind's schema; one diagnostic per problem (one per
/// unknown key), each at the offending key or value.
pub fn validate(kind: Kind, file: &str, value: &Value, spans: &SpanIndex) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for error in kind.validator().iter_errors(value) {
        let pointer = error.instance_path().as_str().to_string();
        if let ErrorKind::AdditionalProperties { unexpected } = error.kind() {
            for key in unexpected {
                let key_pointer = pointer_push(&pointer, key);
                let message = format!("unknown key `{key}` in {}", describe(&pointer, kind));
                diagnostics.push(
                    Diagnostic::error(
                        Code::UnknownKey,
                        file,
                        spans.key_span(&key_pointer),
                        message,
                    )
                    .with_help(allowed_keys(kind, &pointer)),
                );
            }
            continue;
        }
        let (code, message, help) = problem(kind, &pointer, &error);
        let diagnostic = Diagnostic::error(code, file, spans.value_span(&pointer), message);
        diagnostics.push(match help {
            Some(help) => diagnostic.with_help(help),
            None => diagnostic,
        });
    }
    diagnostics
}

/// A schema violation at a value (not an unknown key) in words: its code, message and
/// help if any.
fn problem(
    kind: Kind,
    pointer: &str,
    error: &jsonschema::ValidationError<'_>,
) -> (Code, String, Option<&'static str>) {
    let instance: &Value = error.instance();
    let shown = short(instance);
    let what = describe(pointer, kind);
    let message = |code: Code, text: String| (code, text, None);
    match error.kind() {
        ErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default();
            let text = format!("missing required key `{property}` in {what}");
            message(Code::MissingKey, text)
        }
        ErrorKind::Type { kind: expected } => {
            let expected = type_name(&format!("{expected:?}"));
            let found = value_kind(instance);
            message(
                Code::WrongType,
                format!("{what} must be {expected}, found {found}"),
            )
        }
        ErrorKind::Enum { options } => {
            let options = list(options);
            let text = format!("{shown} is not allowed for {what}; expected one of {options}");
            message(Code::InvalidValue, text)
        }
        ErrorKind::Constant { expected_value } => {
            let text = format!("{shown} is not allowed for {what}; expected {expected_value}");
            message(Code::InvalidValue, text)
        }
        ErrorKind::Pattern { pattern } => {
            let (code, name, rule) = pattern_rule(pattern);
            (code, format!("{shown} is not a valid {name}"), Some(rule))
        }
        ErrorKind::Minimum { limit }
        | ErrorKind::Maximum { limit }
        | ErrorKind::ExclusiveMinimum { limit }
        | ErrorKind::ExclusiveMaximum { limit } => {
            let bound = match error.kind() {
                ErrorKind::Minimum { .. } => "at least",
                ErrorKind::Maximum { .. } => "at most",
                ErrorKind::ExclusiveMinimum { .. } => "above",
                _ => "below",
            };
            let text = format!("{what} must be {bound} {limit}, found {shown}");
            message(Code::ValueOutOfRange, text)
        }
        ErrorKind::MinItems { limit } | ErrorKind::MinProperties { limit } => {
            let entries = if *limit == 1 { "entry" } else { "entries" };
            let text = format!("{what} needs at least {limit} {entries}");
            message(Code::InvalidLength, text)
        }
        ErrorKind::MinLength { limit } | ErrorKind::MaxLength { limit } => {
            let bound = match error.kind() {
                ErrorKind::MinLength { .. } => "at least",
                _ => "at most",
            };
            let text = format!("{what} must be {bound} {limit} characters long");
            message(Code::InvalidLength, text)
        }
        _ => message(Code::InvalidFormat, format!("{what}: {error}")),
    }
}

/// Which code and words a failed `pattern` gets. Every pattern in our schemas comes from a
/// newtype in `model`, so each has a rule a person can read.
fn pattern_rule(pattern: &str) -> (Code, &'static str, &'static str) {
    const RULES: &[(&str, Code, &str, &str)] = &[
        (
            Handle::PATTERN,
            Code::InvalidHandle,
            Handle::WHAT,
            "handles use lowercase letters, digits, `.`, `_` and `-`, start with a letter or digit, and have at most 21 characters",
        ),
        (
            ChannelName::PATTERN,
            Code::InvalidChannelName,
            ChannelName::WHAT,
            "channel names use lowercase letters, digits, `-` and `_`, at most 80 characters, no spaces or periods",
        ),
        (
            Email::PATTERN,
            Code::InvalidEmail,
            Email::WHAT,
            "write a full address such as `name@example.com`",
        ),
        (
            TeamId::PATTERN,
            Code::InvalidTeamId,
            TeamId::WHAT,
            "Slack team ids start with `T` (workspace) or `E` (organisation) followed by capital letters and digits",
        ),
        (
            PlanHash::PATTERN,
            Code::MalformedApprovalHash,
            PlanHash::WHAT,
            "copy the hash exactly as `slack-gitops plan` prints it: `sha256:` and 64 lowercase hex digits",
        ),
    ];
    RULES
        .iter()
        .find(|(known, ..)| *known == pattern)
        .map(|(_, code, what, rule)| (*code, *what, *rule))
        .unwrap_or((
            Code::InvalidFormat,
            "value",
            "the value has the wrong shape",
        ))
}

/// Names the node at `pointer` for a message: "`usergroups[2].members`".
fn describe(pointer: &str, kind: Kind) -> String {
    if pointer.is_empty() {
        return format!("the {} file", kind.as_str());
    }
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    format!("`{out}`")
}

/// The keys a mapping at `pointer` may have, read from the schema.
fn allowed_keys(kind: Kind, pointer: &str) -> String {
    let mut schema = kind.schema();
    let root = kind.schema();
    for segment in pointer.split('/').skip(1) {
        schema = resolve(root, schema);
        let next = if segment.bytes().all(|b| b.is_ascii_digit()) {
            schema.get("items")
        } else {
            schema
                .get("properties")
                .and_then(|p| p.get(segment))
                .or_else(|| schema.get("additionalProperties"))
        };
        match next {
            Some(next) => schema = next,
            None => return String::new(),
        }
    }
    let schema = resolve(root, schema);
    match schema.get("properties").and_then(Value::as_object) {
        Some(properties) => format!(
            "allowed keys here: {}",
            properties
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    }
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|p| root.pointer(p))
            .unwrap_or(schema),
        None => schema,
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("`{}...`", text.chars().take(57).collect::<String>())
    } else {
        format!("`{text}`")
    }
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (an empty value)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn type_name(debug: &str) -> String {
    let lower = debug.to_lowercase();
    let names: Vec<&str> = [
        "object", "array", "string", "integer", "number", "boolean", "null",
    ]
    .into_iter()
    .filter(|name| lower.contains(name))
    .collect();
    let describe = |name: &str| match name {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "`true` or `false`",
        _ => "empty",
    };
    match names.as_slice() {
        [] => "of another type".to_string(),
        names => names
            .iter()
            .map(|n| describe(n))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn list(options: &Value) -> String {
    match options.as_array() {
        Some(items) => items
            .iter()
            .map(|item| {
                format!(
                    "`{}`",
                    item.as_str().map_or(item.to_string(), str::to_string)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => options.to_string(),
    }
}
