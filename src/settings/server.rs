//! The `[server]` table of the configuration file: settings of the HTTP server itself, which
//! the library does not read.
//!
//! `cors_origins` lists the web origins whose pages may call the API from a browser
//! ([`CorsOrigins`]); each is checked here, at start, so a malformed one is a configuration
//! error that names it. `tls_cert_file` and `tls_key_file` name the PEM files of HTTPS
//! ([`TlsFiles`]), both or neither; `crate::tls` reads them when the server starts.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// The configuration file as far as the server's own table goes; every other table is the
/// library's (`ConfigFile`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ServerFile {
    /// The `[server]` table.
    #[serde(default)]
    pub server: ServerSection,
}

/// The `[server]` table, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerSection {
    /// Origins allowed to call the API from a browser (`server.cors_origins`).
    pub cors_origins: Option<Vec<String>>,
    /// The certificate chain of HTTPS, PEM (`server.tls_cert_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of that certificate, PEM (`server.tls_key_file`).
    pub tls_key_file: Option<PathBuf>,
}

/// The PEM files the server answers HTTPS with: the certificate chain (the server's own
/// certificate first) and its private key (PKCS#8, PKCS#1 or SEC1). Relative paths are read
/// from the working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `server.tls_cert_file`.
    pub cert: PathBuf,
    /// `server.tls_key_file`.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The two keys as written in the file: both set is HTTPS, neither is plain HTTP, one
    /// alone is an error naming the other.
    pub fn from_keys(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<TlsFiles>, ConfigError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError(
                "server.tls_cert_file is set without server.tls_key_file: HTTPS needs both".into(),
            )),
            (None, Some(_)) => Err(ConfigError(
                "server.tls_key_file is set without server.tls_cert_file: HTTPS needs both".into(),
            )),
        }
    }
}

/// Which web origins may call the API from a browser (CORS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// None: no CORS headers are sent and preflight requests are answered as any other
    /// `OPTIONS` request (the default).
    #[default]
    Off,
    /// Any origin (`["*"]`): answered `Access-Control-Allow-Origin: *`. The bearer token
    /// still guards what it guards; cookies are never allowed.
    Any,
    /// These origins exactly (`scheme://host[:port]`, lower case, as browsers send them).
    Listed(Vec<String>),
}

impl CorsOrigins {
    /// Checks `server.cors_origins` as written in the file; `None` or `[]` is [`CorsOrigins::Off`].
    pub fn from_list(list: Option<&[String]>) -> Result<CorsOrigins, ConfigError> {
        let list = list.unwrap_or_default();
        if list.is_empty() {
            return Ok(CorsOrigins::Off);
        }
        if list.iter().any(|o| o == "*") {
            return if list.len() == 1 {
                Ok(CorsOrigins::Any)
            } else {
                Err(ConfigError("server.cors_origins: \"*\" (any origin) must be the only entry".to_string()))
            };
        }
        for origin in list {
            check_origin(origin).map_err(|why| {
                ConfigError(format!("server.cors_origins: {origin:?} is not an origin: {why}"))
            })?;
        }
        Ok(CorsOrigins::Listed(list.to_vec()))
    }
}

/// Whether `origin` is what a browser sends in `Origin`: `http` or `https`, `://`, a host (a
/// name, an IPv4 address or a bracketed IPv6 address) and an optional port; nothing else.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    let (scheme, rest) = origin.split_once("://").ok_or("expected scheme://host[:port]")?;
    if scheme != "http" && scheme != "https" {
        return Err("the scheme must be http or https, in lower case");
    }
    if rest.contains(['/', '?', '#']) {
        return Err("an origin has no path (not even a trailing /), query or fragment");
    }
    if rest.contains('@') {
        return Err("an origin has no user name or password");
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or("an unclosed [ in the host")?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err("a bad IPv6 address");
            }
            match after {
                "" => (addr, None),
                _ => (addr, Some(after.strip_prefix(':').ok_or("expected :port after the IPv6 address")?)),
            }
        }
        None => match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    let host_ok = !host.is_empty()
        && (rest.starts_with('[')
            || host.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'));
    if !host_ok {
        return Err("the host must be a name or address in lower case");
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return Err("the port must be a number from 0 to 65535");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Result<CorsOrigins, ConfigError> {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        CorsOrigins::from_list(Some(&list))
    }

    #[test]
    fn unset_or_empty_is_off() {
        assert_eq!(CorsOrigins::from_list(None), Ok(CorsOrigins::Off));
        assert_eq!(origins(&[]), Ok(CorsOrigins::Off));
    }

    #[test]
    fn origins_as_browsers_send_them_are_taken() {
        let good =
            ["https://ops.example", "http://localhost:8080", "http://127.0.0.1:3002", "https://[::1]:8443"];
        assert_eq!(origins(&good), Ok(CorsOrigins::Listed(good.iter().map(|s| s.to_string()).collect())));
        assert_eq!(origins(&["*"]), Ok(CorsOrigins::Any));
    }

    #[test]
    fn a_malformed_origin_is_named() {
        for bad in [
            "ops.example",
            "https://ops.example/",
            "https://ops.example/dash",
            "ftp://ops.example",
            "HTTPS://ops.example",
            "https://Ops.Example",
            "https://ops.example:port",
            "https://ops.example:99999",
            "https://user@ops.example",
            "https://",
            "https://[::1",
            "https://[nope]:1",
            "https://ops.example?x=1",
        ] {
            let err = origins(&["https://fine.example", bad]).unwrap_err().0;
            assert!(err.contains("server.cors_origins") && err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn tls_needs_both_files_or_neither() {
        let path = |p: &str| Some(PathBuf::from(p));
        assert_eq!(TlsFiles::from_keys(None, None), Ok(None));
        assert_eq!(
            TlsFiles::from_keys(path("c.pem"), path("k.pem")),
            Ok(Some(TlsFiles { cert: "c.pem".into(), key: "k.pem".into() }))
        );
        let err = TlsFiles::from_keys(path("c.pem"), None).unwrap_err().0;
        assert!(err.contains("server.tls_key_file") && err.contains("both"), "{err}");
        let err = TlsFiles::from_keys(None, path("k.pem")).unwrap_err().0;
        assert!(err.contains("server.tls_cert_file") && err.contains("both"), "{err}");
    }

    #[test]
    fn any_origin_must_stand_alone() {
        let err = origins(&["*", "https://ops.example"]).unwrap_err().0;
        assert!(err.contains("\"*\""), "{err}");
    }
}
