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
}
