//! The identity provider fakes (`slack_emulator::idp`: Okta's management API and
//! Microsoft Graph) served from a [`Directory`], for the identity source's tests. Their
//! rate-limit windows run at the tests' time scale.

use slack_emulator::idp::{Idp, graph, okta};
use slack_gitops::model::directory::Directory;

/// The fakes' time scale: Okta's minute and Graph's ten seconds pass in milliseconds.
pub const TIME_SCALE: f64 = 1000.0;

/// Serves `directory` as Okta; returns its base URL and the fake.
pub async fn serve(directory: Directory) -> (String, Idp) {
    let idp = Idp::new(&directory, TIME_SCALE);
    let base = okta::serve(idp.clone()).await;
    (base, idp)
}

/// Serves `directory` as Microsoft Graph (and its token endpoint); returns its base URL
/// and the fake.
pub async fn serve_graph(directory: Directory) -> (String, Idp) {
    let idp = Idp::new(&directory, TIME_SCALE);
    let base = graph::serve(idp.clone()).await;
    (base, idp)
}

/// Acme's identity directory (the example's export).
pub async fn acme_directory() -> Directory {
    use slack_gitops::identity::IdentitySource;
    slack_gitops::identity::file::FileSource::new(super::fixture(
        "examples/acme/identity/directory.yaml",
    ))
    .read()
    .await
    .unwrap()
}
