//! Reading the identity provider: one trait, one [`Directory`] snapshot type, four
//! adapters (`file`, `scim`, `okta`, `entra`).
//!
//! Every adapter reads everything or fails: a failed page, a timeout or an inconsistent
//! answer fails the whole read with an error naming the source, the call and what to do.
//! An empty or partial directory is never returned in place of an error, because the
//! planner would read it as "everyone left".

pub mod entra;
pub mod file;
pub mod http;
pub mod kept;
pub mod okta;
pub mod scim;

use std::path::Path;

use crate::config::types::{IdentitySettings, IdentitySource as SourceKind};
use crate::model::directory::Directory;

/// A failed identity read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity source {source_name}: {message}")]
    Read {
        source_name: String,
        message: String,
    },
    #[error("identity source {source_name}: {call}: {message}")]
    Call {
        source_name: String,
        call: String,
        message: String,
    },
    #[error(
        "identity source {source_name}: the environment variable {variable} is not set; {what}"
    )]
    MissingSecret {
        source_name: String,
        variable: String,
        what: String,
    },
}

/// An identity provider adapter.
pub trait IdentitySource {
    /// Reads the whole directory, or fails.
    fn read(&self) -> impl std::future::Future<Output = Result<Directory, IdentityError>> + Send;
}

/// One person's view as a directory: that person, and each group they are in (name,
/// description) listing them alone.
pub(crate) fn one_person(
    source: String,
    person: crate::model::directory::Person,
    groups: Vec<(String, String)>,
) -> Directory {
    let email = person.email.to_lowercase();
    Directory {
        source,
        people: vec![person],
        groups: groups
            .into_iter()
            .map(|(name, description)| crate::model::directory::Group {
                name,
                description,
                members: vec![email.clone()],
                groups: Vec::new(),
            })
            .collect(),
    }
    .normalise()
}

/// The configured adapter.
pub enum Source {
    File(file::FileSource),
    Scim(scim::ScimSource),
    Okta(okta::OktaSource),
    Entra(entra::EntraSource),
}

impl Source {
    /// Builds the adapter the config names. Secrets come from `environment` (a lookup,
    /// so tests need not touch the process environment).
    pub fn from_settings(
        settings: &IdentitySettings,
        repository: &Path,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Source, IdentityError> {
        let secret = |variable: &Option<String>, what: &str| {
            let variable = variable.clone().unwrap_or_default();
            environment(&variable).ok_or_else(|| IdentityError::MissingSecret {
                source_name: settings.source.as_str().to_string(),
                variable: variable.clone(),
                what: what.to_string(),
            })
        };
        let url = || settings.url.clone().unwrap_or_default();
        Ok(match settings.source {
            SourceKind::File => Source::File(file::FileSource::configured(
                repository,
                settings.path.as_deref().unwrap_or_default(),
                environment,
            )?),
            SourceKind::Scim => Source::Scim(scim::ScimSource::new(
                url(),
                secret(
                    &settings.token_env,
                    "it must hold the SCIM server's bearer token",
                )?,
            )),
            SourceKind::Okta => Source::Okta(
                okta::OktaSource::new(
                    url(),
                    secret(
                        &settings.token_env,
                        "it must hold an Okta API token (SSWS) or an OAuth access token",
                    )?,
                )
                .with_manager(settings.manager.clone().unwrap_or_default()),
            ),
            SourceKind::Entra => Source::Entra(entra::EntraSource::new(
                settings.tenant_id.clone().unwrap_or_default(),
                settings.client_id.clone().unwrap_or_default(),
                secret(
                    &settings.client_secret_env,
                    "it must hold the Entra application's client secret",
                )?,
                settings.url.clone(),
            )),
        })
    }

    /// Reads the members of `groups` only (and, in Entra, of the groups nested in them),
    /// where listing members costs a call per group; every group is still listed by
    /// name. A file or a SCIM server is read whole.
    pub fn reading_members_of(self, groups: std::collections::BTreeSet<String>) -> Source {
        match self {
            Source::Okta(source) => Source::Okta(source.reading_members_of(groups)),
            Source::Entra(source) => Source::Entra(source.reading_members_of(groups)),
            other => other,
        }
    }

    /// One person's view, where the source can read it without the rest of the org
    /// (Okta: the user and their groups; Entra: the user and `transitiveMemberOf`): a
    /// directory of that person (none when the source does not know them) and every
    /// group they are in, nested ones included, each listing them alone. `None` for a
    /// source read whole (a file is local; a SCIM server's groups nest, and their parents
    /// are not named from the member's side).
    pub async fn read_person(&self, email: &str) -> Result<Option<Directory>, IdentityError> {
        match self {
            Source::Okta(source) => source.read_person(email).await.map(Some),
            Source::Entra(source) => source.read_person(email).await.map(Some),
            Source::File(_) | Source::Scim(_) => Ok(None),
        }
    }

    pub async fn read(&self) -> Result<Directory, IdentityError> {
        match self {
            Source::File(source) => source.read().await,
            Source::Scim(source) => source.read().await,
            Source::Okta(source) => source.read().await,
            Source::Entra(source) => source.read().await,
        }
    }

    /// What a kept directory of this source depends on; `None` for a source read whole
    /// every time (a file is local; a SCIM server has no change feed).
    pub fn fingerprint(&self) -> Option<String> {
        match self {
            Source::Okta(source) => Some(source.fingerprint()),
            Source::Entra(source) => Some(source.fingerprint()),
            Source::File(_) | Source::Scim(_) => None,
        }
    }

    /// Reads the directory from a kept one (`kept`, the document an earlier read left)
    /// by following the provider's change feed, or in full when there is nothing kept,
    /// when `full` gives a reason to, or when the feed cannot be followed (logged with its
    /// reason). The read carries the document to keep for next time.
    pub async fn read_keeping(
        &self,
        kept: Option<&str>,
        full: Option<String>,
    ) -> Result<kept::Read, IdentityError> {
        match self {
            Source::Okta(source) => read_keeping(source, kept, full).await,
            Source::Entra(source) => read_keeping(source, kept, full).await,
            Source::File(_) | Source::Scim(_) => self.read_once().await,
        }
    }

    /// Reads the directory in full once, keeping nothing (no state store to keep it in).
    pub async fn read_once(&self) -> Result<kept::Read, IdentityError> {
        match self {
            Source::Okta(source) => read_once(source).await,
            Source::Entra(source) => read_once(source).await,
            Source::File(_) | Source::Scim(_) => {
                let directory = self.read().await?;
                Ok(kept::Read {
                    groups_read: directory.groups.len(),
                    directory,
                    how: kept::HowRead::Whole,
                    kept: None,
                    calls: 0,
                })
            }
        }
    }
}

/// An adapter that keeps its directory between reads.
trait Keeping {
    type Kept: serde::Serialize + for<'de> serde::Deserialize<'de>;
    fn calls(&self) -> u64;
    /// A full read; with `keep`, also the cursor a later read follows.
    fn read_full(
        &self,
        keep: bool,
    ) -> impl std::future::Future<Output = Result<Self::Kept, IdentityError>>;
    /// The groups whose members are kept.
    fn groups_read(kept: &Self::Kept) -> usize;
    fn follow(
        &self,
        kept: Self::Kept,
    ) -> impl std::future::Future<Output = Result<kept::Followed<Self::Kept>, IdentityError>>;
    fn directory(&self, kept: &Self::Kept) -> Result<Directory, IdentityError>;
}

macro_rules! keeping {
    ($source:ty, $kept:ty) => {
        impl Keeping for $source {
            type Kept = $kept;
            fn calls(&self) -> u64 {
                <$source>::calls(self)
            }
            async fn read_full(&self, keep: bool) -> Result<$kept, IdentityError> {
                <$source>::read_full_with(self, keep).await
            }
            fn groups_read(kept: &$kept) -> usize {
                kept.groups.values().filter(|g| g.members.is_some()).count()
            }
            async fn follow(&self, kept: $kept) -> Result<kept::Followed<$kept>, IdentityError> {
                <$source>::follow(self, kept).await
            }
            fn directory(&self, kept: &$kept) -> Result<Directory, IdentityError> {
                <$source>::directory(self, kept)
            }
        }
    };
}
keeping!(okta::OktaSource, okta::OktaKept);
keeping!(entra::EntraSource, entra::EntraKept);

async fn read_keeping<S: Keeping>(
    source: &S,
    document: Option<&str>,
    full: Option<String>,
) -> Result<kept::Read, IdentityError> {
    let before = source.calls();
    let parsed = document.and_then(kept::from_json::<S::Kept>);
    let reason = match (full, document, &parsed) {
        (Some(reason), ..) => Some(reason),
        (None, None, _) => Some("nothing was kept from an earlier read".to_string()),
        (None, Some(_), None) => Some("the kept directory is of another format".to_string()),
        (None, Some(_), Some(_)) => None,
    };
    let (kept, how) = match (reason, parsed) {
        (None, Some(kept)) => match source.follow(kept).await? {
            kept::Followed::Updated { kept, changes } => {
                (kept, kept::HowRead::Incremental { changes })
            }
            kept::Followed::ReadInFull(reason) => {
                tracing::warn!(%reason, "the identity provider's change feed cannot be followed; reading it in full");
                (
                    source.read_full(true).await?,
                    kept::HowRead::Full { reason },
                )
            }
        },
        (reason, _) => {
            let reason = reason.unwrap_or_default();
            (
                source.read_full(true).await?,
                kept::HowRead::Full { reason },
            )
        }
    };
    let directory = source.directory(&kept)?;
    Ok(kept::Read {
        directory,
        how,
        groups_read: S::groups_read(&kept),
        kept: Some(kept::to_json(kept)),
        calls: source.calls() - before,
    })
}

async fn read_once<S: Keeping>(source: &S) -> Result<kept::Read, IdentityError> {
    let before = source.calls();
    let kept = source.read_full(false).await?;
    Ok(kept::Read {
        directory: source.directory(&kept)?,
        how: kept::HowRead::Full {
            reason: "no state store to keep it in".into(),
        },
        groups_read: S::groups_read(&kept),
        kept: None,
        calls: source.calls() - before,
    })
}
