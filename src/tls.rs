//! HTTPS: the rustls configuration the server answers with, read from the PEM files of
//! `[server] tls_cert_file` and `tls_key_file` when the server starts.
//!
//! Every problem is a [`ConfigError`] naming the key, the file and what is wrong with it (it
//! cannot be read, holds no certificate or no key, or the key is not the certificate's), so
//! `serve` exits with code 2 before any worker starts. ALPN offers `h2` and `http/1.1`
//! (actix-web adds both), so clients that speak HTTP/2 get it.

#[cfg(feature = "tls")]
use std::path::Path;

use crate::settings::{ConfigError, TlsFiles};

/// The TLS configuration of a listener: a rustls `ServerConfig` (ring, TLS 1.2 and 1.3).
#[cfg(feature = "tls")]
pub type ServerTls = rustls::ServerConfig;

/// Without the `tls` feature there is no TLS configuration: none can be made.
#[cfg(not(feature = "tls"))]
#[derive(Debug, Clone)]
pub enum ServerTls {}

/// Reads the certificate chain and key of `files` into a server configuration.
#[cfg(feature = "tls")]
pub fn load(files: &TlsFiles) -> Result<ServerTls, ConfigError> {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let cert = files.cert.as_path();
    let key = files.key.as_path();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| pem_error("tls_cert_file", cert, "certificate", &e))?;
    if chain.is_empty() {
        return Err(bad("tls_cert_file", cert, "it holds no PEM certificate (BEGIN CERTIFICATE)"));
    }
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("tls_key_file", key, "private key", &e))?;
    warn_if_shared(key);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("server TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => ConfigError(format!(
                "server.tls_key_file {}: the key does not match the certificate in server.tls_cert_file {}",
                key.display(),
                cert.display()
            )),
            other => bad("tls_key_file", key, &format!("cannot be used with the certificate: {other}")),
        })
}

/// Warns when the key file can be read by others than its owner (the path only, never the key).
#[cfg(feature = "tls")]
fn warn_if_shared(key: &std::path::Path) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(key) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            log::warn!(
                "server.tls_key_file {}: readable by others than its owner (mode {mode:03o}); `chmod 600` it",
                key.display()
            );
        }
    }
}

/// Without the `tls` feature, HTTPS is a configuration error.
#[cfg(not(feature = "tls"))]
pub fn load(_files: &TlsFiles) -> Result<ServerTls, ConfigError> {
    Err(ConfigError(
        "server.tls_cert_file: this workerpool was built without HTTPS (the `tls` feature)".into(),
    ))
}

#[cfg(feature = "tls")]
fn bad(key: &str, path: &Path, why: &str) -> ConfigError {
    ConfigError(format!("server.{key} {}: {why}", path.display()))
}

#[cfg(feature = "tls")]
fn pem_error(key: &str, path: &Path, what: &str, e: &rustls::pki_types::pem::Error) -> ConfigError {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => bad(key, path, &format!("cannot be read: {io}")),
        Error::NoItemsFound => bad(key, path, &format!("it holds no PEM {what}")),
        other => bad(key, path, &format!("not a readable PEM {what}: {other}")),
    }
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") }
    }

    #[test]
    fn each_problem_names_the_key_and_the_file() {
        let dir = std::env::temp_dir().join(format!("wp-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = TlsFiles { cert: dir.join("nope.pem"), key: dir.join("nope.key") };
        let err = load(&missing).unwrap_err().0;
        assert!(
            err.contains("server.tls_cert_file")
                && err.contains("nope.pem")
                && err.contains("cannot be read")
        );
        let err = load(&files(&dir, "not pem\n", "")).unwrap_err().0;
        assert!(err.contains("server.tls_cert_file") && err.contains("no PEM certificate"), "{err}");
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let err = load(&files(&dir, cert, "nothing here\n")).unwrap_err().0;
        assert!(err.contains("server.tls_key_file") && err.contains("private key"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
