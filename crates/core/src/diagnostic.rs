//! Diagnostics: what the tool says about a user's mistake, and where.
//!
//! Every problem found in a config repository becomes a [`Diagnostic`] with a stable
//! kebab-case [`Code`], a message that says what to fix, and a span in the YAML. The
//! validating code collects them and keeps going, so one run reports every problem.
//! Renderers (text, GitHub annotations, JSON) live in `render::diagnostics`.

use serde::Serialize;

/// A position in a source file: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// A range in a source file, end exclusive. A zero-width span marks a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Span {
    pub start: Position,
    pub end: Position,
}

impl Span {
    /// A zero-width span at one position.
    pub fn point(line: usize, column: usize) -> Span {
        let position = Position { line, column };
        Span {
            start: position,
            end: position,
        }
    }
}

/// How serious a diagnostic is. Errors make `validate` exit 1; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $text:literal, )*) => {
        /// The stable identifier of a kind of problem. The kebab-case text is part of the
        /// product contract: users grep for it, CI annotations show it, and
        /// `docs/diagnostics.md` documents each one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The stable kebab-case name of this code.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Code::$variant => $text, )*
                }
            }
        }
    };
}

codes! {
    /// A Rego policy does not compile.
    RegoSyntax = "rego-syntax",
    /// A Rego policy failed while evaluating, took too long, or yielded a message of the
    /// wrong shape.
    RegoError = "rego-error",
    /// A Rego policy denies the config or the plan.
    PolicyDenied = "policy-denied",
    /// A Rego policy warns about the config or the plan.
    PolicyWarned = "policy-warned",
    /// The file is not valid UTF-8.
    NotUtf8 = "not-utf8",
    /// The file is larger than the loader accepts.
    FileTooLarge = "file-too-large",
    /// The file holds no YAML document.
    EmptyFile = "empty-file",
    /// The YAML does not parse.
    YamlSyntax = "yaml-syntax",
    /// A tab character is used for indentation.
    YamlTab = "yaml-tab",
    /// A mapping repeats a key.
    YamlDuplicateKey = "yaml-duplicate-key",
    /// An anchor (`&name`) appears; config must be explicit.
    YamlAnchor = "yaml-anchor",
    /// An alias (`*name`) appears; aliases are never expanded.
    YamlAlias = "yaml-alias",
    /// A tag other than YAML's core ones (`!!str`, ...) appears.
    YamlTag = "yaml-tag",
    /// A mapping key that is not a plain string.
    YamlComplexKey = "yaml-complex-key",
    /// More than one YAML document in one file.
    YamlMultipleDocuments = "yaml-multiple-documents",
    /// Nesting deeper than any config needs.
    YamlTooDeep = "yaml-too-deep",
    /// The document is not a mapping at the top level.
    NotAMapping = "not-a-mapping",
    /// `apiVersion` is missing or not one this version understands.
    UnknownApiVersion = "unknown-api-version",
    /// `kind` is missing or not one of Config, Mappings, Policy, Approval.
    UnknownKind = "unknown-kind",
    /// A file's kind does not match where it lives in the repository.
    KindMismatch = "kind-mismatch",
    /// The repository has no `slack-gitops.yaml`.
    MissingConfig = "missing-config",
    /// A symlink points outside the repository.
    SymlinkEscapesRepository = "symlink-escapes-repository",
    /// A file could not be read.
    UnreadableFile = "unreadable-file",
    /// A path in the config (`identity.path`) leaves the repository.
    PathOutsideRepository = "path-outside-repository",
    /// A key the schema does not know.
    UnknownKey = "unknown-key",
    /// A required key is missing.
    MissingKey = "missing-key",
    /// A value has the wrong type.
    WrongType = "wrong-type",
    /// A value is not one of the allowed choices.
    InvalidValue = "invalid-value",
    /// A number is outside its allowed range.
    ValueOutOfRange = "value-out-of-range",
    /// A list or string is too short or too long, or a list repeats an item.
    InvalidLength = "invalid-length",
    /// A string does not have the required shape.
    InvalidFormat = "invalid-format",
    /// A usergroup handle breaks Slack's rules.
    InvalidHandle = "invalid-handle",
    /// A channel name breaks Slack's rules.
    InvalidChannelName = "invalid-channel-name",
    /// A value that must be an email address is not one.
    InvalidEmail = "invalid-email",
    /// A workspace's team id is not a Slack team id.
    InvalidTeamId = "invalid-team-id",
    /// An approval's hash is not a plan hash.
    MalformedApprovalHash = "malformed-approval-hash",
    /// Two usergroups share a handle.
    DuplicateUsergroupHandle = "duplicate-usergroup-handle",
    /// Two usergroups share a name.
    DuplicateUsergroupName = "duplicate-usergroup-name",
    /// Two channels share a name in one workspace.
    DuplicateChannel = "duplicate-channel",
    /// A workspace key is used but not declared under `slack.workspaces`.
    UndeclaredWorkspace = "undeclared-workspace",
    /// A usergroup lists a default channel that lives in a workspace the usergroup is not in.
    ChannelOutsideUsergroupWorkspaces = "channel-outside-usergroup-workspaces",
    /// A config for Business+ uses what only Enterprise Grid has (several workspaces).
    GridOnly = "grid-only",
    /// A member spec that can never select anyone.
    EmptyMemberSpec = "empty-member-spec",
    /// A member spec that includes and excludes the same group or person.
    ContradictoryMemberSpec = "contradictory-member-spec",
    /// A name in a member spec is not a group in the identity snapshot.
    UnknownIdpGroup = "unknown-idp-group",
    /// A guardrail limit that sets no limit.
    EmptyLimit = "empty-limit",
    /// A duration that cannot be read or is zero.
    InvalidDuration = "invalid-duration",
    /// The identity source lacks a setting it needs.
    IdentitySettingMissing = "identity-setting-missing",
    /// A setting belongs to another identity source.
    IdentitySettingNotForSource = "identity-setting-not-for-source",
    /// A name is listed twice where it should appear once.
    DuplicateEntry = "duplicate-entry",
    /// Two policy files set the same thing.
    ConflictingPolicy = "conflicting-policy",
    /// IdP groups nest each other in a cycle.
    IdentityGroupCycle = "identity-group-cycle",
    /// An IdP group nests a name that is not a group.
    IdentityUnknownNestedGroup = "identity-unknown-nested-group",
    /// The `file` identity export could not be read, so group names were not checked.
    IdentityExportUnreadable = "identity-export-unreadable",
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One problem, located in one file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Repository-relative path with `/` separators.
    pub file: String,
    /// Where in the file; `None` for problems of the file as a whole (or a missing file).
    pub span: Option<Span>,
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// A hint that says how to fix it, when the message alone does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span` in `file`.
    pub fn error(
        code: Code,
        file: impl Into<String>,
        span: Option<Span>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            span,
            severity: Severity::Error,
            code,
            message: message.into(),
            help: None,
        }
    }

    /// The same diagnostic, downgraded to a warning.
    pub fn warning(self) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..self
        }
    }

    /// The same diagnostic with a hint attached.
    pub fn with_help(self, help: impl Into<String>) -> Diagnostic {
        Diagnostic {
            help: Some(help.into()),
            ..self
        }
    }
}

/// Whether any diagnostic is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Severity::Error)
}

/// The longest excerpt of a file's content that a message may quote.
const EXCERPT_CHARS: usize = 24;

/// The longest message made from a parser's error.
const MESSAGE_CHARS: usize = 300;

/// A parser's error message made safe to show in a PR comment, a log or `/status`: every
/// quoted excerpt (`"..."` or `` `...` ``, as serde and the YAML reader quote what they
/// met) cut to a few characters, control characters escaped, one line, bounded length.
/// The message says what is wrong and where; it never carries the file's content.
pub fn shorten_quotes(message: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut quoted = 0;
    let mut escaped = false;
    for c in message.chars() {
        if out.chars().count() >= MESSAGE_CHARS {
            out.push_str("...");
            break;
        }
        match quote {
            Some(open) if !escaped && c == open => {
                quote = None;
                out.push(c);
            }
            Some(_) => {
                escaped = !escaped && c == '\\';
                quoted += 1;
                if quoted <= EXCERPT_CHARS {
                    out.extend(c.escape_debug());
                } else if quoted == EXCERPT_CHARS + 1 {
                    out.push_str("...");
                }
            }
            None => {
                if c == '"' || c == '`' {
                    quote = Some(c);
                    quoted = 0;
                    escaped = false;
                    out.push(c);
                } else if c.is_control() {
                    out.extend(c.escape_debug());
                } else {
                    out.push(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_excerpts_are_cut_short_and_escaped() {
        let passwd = "root:x:0:0:root:/root:/bin/bash daemon:x:1:1:daemon:/usr/sbin";
        let message = format!("invalid type: string \"{passwd}\", expected struct DirectoryFile");
        let shown = shorten_quotes(&message);
        assert_eq!(
            shown,
            "invalid type: string \"root:x:0:0:root:/root:/b...\", expected struct DirectoryFile"
        );
        assert!(!shown.contains("daemon"));
        assert_eq!(shorten_quotes("a\nb `x\u{1b}[31m`"), "a\\nb `x\\u{1b}[31m`");
        assert!(shorten_quotes(&"x".repeat(10_000)).len() < 310);
    }
}
