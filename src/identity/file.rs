//! The `file` identity source: a directory export as YAML or JSON (one document with
//! `people` and `groups`), or as CSV for HR systems: a directory holding `people.csv`
//! (`email,given_name,family_name,title,department,manager,status`) and `memberships.csv`
//! (`group,member`, where a member is an email or `group:NAME` for a nested group).
//!
//! The export named by a config (`identity.path`) is hostile input: it must stay inside
//! the repository (no absolute path, no `..`, no symlink that resolves outside), no file
//! over [`MAX_EXPORT_BYTES`] is read, and a parse error quotes at most a short, escaped
//! excerpt of the file, because errors reach PR comments, logs and `/status`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{IdentityError, IdentitySource};
use crate::config::yaml_data as yaml;
use crate::model::directory::{Directory, Group, Person, PersonStatus};

/// The largest export file read: far above a 200,000-person export (about 100 MB of
/// YAML), far below what would hurt the machine that reads it.
pub const MAX_EXPORT_BYTES: u64 = 512 * 1024 * 1024;

/// The environment variable that names an export outside the repository. It is the
/// operator's to set (a controller's deployment, a CI job); a commit cannot.
pub const EXPORT_OVERRIDE: &str = "SLACK_GITOPS_IDENTITY_EXPORT";

/// Reads a directory export from disk.
pub struct FileSource {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(rename = "kind")]
    _kind: Option<String>,
    people: Vec<Person>,
    #[serde(default)]
    groups: Vec<Group>,
}

impl FileSource {
    /// The export at a path the caller chose (a command-line argument, a test).
    pub fn new(path: PathBuf) -> FileSource {
        FileSource { path }
    }

    /// The export to read: the one the operator names in [`EXPORT_OVERRIDE`] (an HR
    /// system's file outside the repository, which changes without a commit), else the
    /// one the config names, inside the repository.
    pub fn configured(
        root: &Path,
        relative: &str,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FileSource, IdentityError> {
        match environment(EXPORT_OVERRIDE) {
            Some(path) => Ok(FileSource::new(PathBuf::from(path))),
            None => FileSource::in_repository(root, relative),
        }
    }

    /// The export a config names, `relative` to the repository `root`; refused when it
    /// leaves the repository: an absolute path, a `..`, or a symlink on the way that
    /// resolves outside. A path that does not exist is left for the read to report.
    pub fn in_repository(root: &Path, relative: &str) -> Result<FileSource, IdentityError> {
        let outside = |why: &str| IdentityError::Read {
            source_name: relative.to_string(),
            message: format!(
                "identity.path {why}; the export must be a file inside the config repository"
            ),
        };
        let path = Path::new(relative);
        if !crate::config::semantic::stays_inside(relative) {
            return Err(outside("leaves the repository (an absolute path or `..`)"));
        }
        let joined = root.join(path);
        if let (Ok(root), Ok(target)) = (root.canonicalize(), joined.canonicalize())
            && !target.starts_with(&root)
        {
            return Err(outside("is a symlink that resolves outside the repository"));
        }
        Ok(FileSource { path: joined })
    }

    /// An error about the export; parsers' messages quote the file, so each quoted
    /// excerpt is cut short and escaped.
    fn error(&self, message: impl Into<String>) -> IdentityError {
        IdentityError::Read {
            source_name: self.path.display().to_string(),
            message: crate::diagnostic::shorten_quotes(&message.into()),
        }
    }

    /// Opens one file of the export (`name` says which in errors), refusing one over
    /// [`MAX_EXPORT_BYTES`].
    fn open(&self, path: &Path, name: &str) -> Result<std::fs::File, IdentityError> {
        let file = std::fs::File::open(path)
            .map_err(|error| self.error(format!("cannot read {name}: {error}")))?;
        let size = file
            .metadata()
            .map_err(|error| self.error(format!("cannot read {name}: {error}")))?
            .len();
        if size > MAX_EXPORT_BYTES {
            return Err(self.error(format!(
                "{name} is {size} bytes, over the {MAX_EXPORT_BYTES}-byte limit of an export"
            )));
        }
        Ok(file)
    }

    fn read_document(&self) -> Result<Directory, IdentityError> {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(self.open(&self.path, "the export")?, MAX_EXPORT_BYTES),
            &mut text,
        )
        .map_err(|error| self.error(format!("cannot read the export: {error}")))?;
        let name = self.path.display().to_string();
        let file: DirectoryFile = if self.path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text)
                .map_err(|error| self.error(format!("not a directory export: {error}")))?
        } else {
            // Straight into the typed export, event by event: no tree, no spans.
            yaml::from_str(&text).map_err(|error| {
                self.error(format!(
                    "{name}:{}:{}: not a directory export: {}",
                    error.line, error.column, error.message
                ))
            })?
        };
        Ok(Directory {
            source: name,
            people: file.people,
            groups: file.groups,
        })
    }

    fn read_csv(&self) -> Result<Directory, IdentityError> {
        #[derive(Deserialize)]
        struct PersonRow {
            email: String,
            #[serde(default)]
            given_name: String,
            #[serde(default)]
            family_name: String,
            #[serde(default)]
            title: String,
            #[serde(default)]
            department: String,
            #[serde(default)]
            manager: String,
            status: String,
        }
        #[derive(Deserialize)]
        struct MembershipRow {
            group: String,
            member: String,
        }
        let open =
            |name: &str| -> Result<csv::Reader<std::io::Take<std::fs::File>>, IdentityError> {
                let file = self.open(&self.path.join(name), name)?;
                Ok(csv::Reader::from_reader(std::io::Read::take(
                    file,
                    MAX_EXPORT_BYTES,
                )))
            };
        let mut people = Vec::new();
        for (line, row) in open("people.csv")?.deserialize::<PersonRow>().enumerate() {
            let row = row.map_err(|error| self.error(format!("people.csv: {error}")))?;
            let status = match row.status.to_lowercase().as_str() {
                "active" => PersonStatus::Active,
                "suspended" | "inactive" | "terminated" | "disabled" => PersonStatus::Suspended,
                other => {
                    return Err(self.error(format!(
                        "people.csv line {}: status `{other}` is not active or suspended",
                        line + 2
                    )));
                }
            };
            people.push(Person {
                email: row.email,
                given_name: row.given_name,
                family_name: row.family_name,
                title: row.title,
                department: row.department,
                manager: (!row.manager.is_empty()).then_some(row.manager),
                status,
            });
        }
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for row in open("memberships.csv")?.deserialize::<MembershipRow>() {
            let row = row.map_err(|error| self.error(format!("memberships.csv: {error}")))?;
            let group = groups.entry(row.group.clone()).or_insert_with(|| Group {
                name: row.group.clone(),
                description: String::new(),
                members: Vec::new(),
                groups: Vec::new(),
            });
            match row.member.strip_prefix("group:") {
                Some(nested) => {
                    group.groups.push(nested.to_string());
                    let nested = nested.to_string();
                    groups.entry(nested.clone()).or_insert_with(|| Group {
                        name: nested,
                        description: String::new(),
                        members: Vec::new(),
                        groups: Vec::new(),
                    });
                }
                None => group.members.push(row.member),
            }
        }
        Ok(Directory {
            source: self.path.display().to_string(),
            people,
            groups: groups.into_values().collect(),
        })
    }
}

impl IdentitySource for FileSource {
    /// Parses on a blocking thread, so the Slack read that runs beside it is not held up
    /// by a large export.
    async fn read(&self) -> Result<Directory, IdentityError> {
        let source = FileSource::new(self.path.clone());
        tokio::task::spawn_blocking(move || source.read_now())
            .await
            .map_err(|error| self.error(format!("the export reader stopped: {error}")))?
    }
}

impl FileSource {
    fn read_now(&self) -> Result<Directory, IdentityError> {
        let directory = if self.path.is_dir() {
            self.read_csv()?
        } else {
            self.read_document()?
        };
        if directory.people.is_empty() {
            return Err(self.error(
                "the export holds nobody; an empty export is refused rather than read as \"everyone left\"",
            ));
        }
        Ok(directory.normalise())
    }
}

/// Whether `path` names an export the file source can read.
pub fn is_export(path: &Path) -> bool {
    path.is_dir()
        || path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
}
