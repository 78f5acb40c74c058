//! TLS client settings shared by the connections that do not go through reqwest
//! (PostgreSQL, Slack's Socket Mode WebSocket): rustls on aws-lc-rs, trusting the CA file
//! given, else the system's roots (and `SSL_CERT_FILE`, `SSL_CERT_DIR`).

/// A rustls client configuration trusting `ca_file` (PEM), or the system's roots. The
/// error names the file, never its content.
pub fn client_config(ca_file: Option<&str>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(file) => {
            let unreadable = |e: &dyn std::fmt::Display| format!("cannot read {file}: {e}");
            for certificate in CertificateDer::pem_file_iter(file).map_err(|e| unreadable(&e))? {
                roots
                    .add(certificate.map_err(|e| unreadable(&e))?)
                    .map_err(|e| unreadable(&e))?;
            }
        }
        None => {
            for certificate in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(certificate);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
