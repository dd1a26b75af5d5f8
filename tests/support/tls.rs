//! A private certificate authority for the TLS tests, made with the `openssl` command (which
//! `scripts/test.sh` installs): its certificate, and keys with certificates it signed for
//! `127.0.0.1` and `localhost`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::redis_server::missing_tool;

/// A certificate authority in a directory: `ca.pem`, `ca.key`, and what it issued.
pub struct Authority {
    dir: PathBuf,
    /// Made in a directory of its own, removed when dropped.
    owned: bool,
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Authority {
    /// A fresh authority in a new temporary directory, removed when dropped. `None` without
    /// `openssl`: a skip on a developer machine, a failure under `CI=true`.
    pub fn new() -> Option<Authority> {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wp-ca-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the authority");
        let mut ca = Authority::in_dir(&dir)?;
        ca.owned = true;
        Some(ca)
    }

    /// A fresh authority whose files go to `dir` (which outlives it).
    pub fn in_dir(dir: &Path) -> Option<Authority> {
        if Command::new("openssl").arg("version").output().is_err() {
            missing_tool("openssl is not installed; scripts/test.sh installs it");
            return None;
        }
        let ca = Authority { dir: dir.to_path_buf(), owned: false };
        ca.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=workerpool test CA",
        ]);
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("ext.cnf");
        Some(ca)
    }

    /// The directory of its files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its certificate (PEM), what a client trusts.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A new key and a certificate for `127.0.0.1` and `localhost` signed by the authority,
    /// as `<name>.pem` and `<name>.key`: `(certificate, key)`.
    pub fn issue(&self, name: &str, common_name: &str) -> (PathBuf, PathBuf) {
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        let subject = format!("/CN={common_name}");
        self.openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        (self.dir.join(pem), self.dir.join(key))
    }

    /// A server's certificate and key (`server.pem`, `server.key`).
    pub fn server(&self) -> (PathBuf, PathBuf) {
        self.issue("server", "127.0.0.1")
    }

    fn openssl(&self, args: &[&str]) {
        match Command::new("openssl").args(args).current_dir(&self.dir).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => panic!("openssl {args:?}: {e}"),
        }
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// For the client libraries' HTTPS cases: an authority with a server certificate, named to
/// `cmd` as `WORKERPOOL_TEST_TLS_DIR` (`ca.pem`, `server.pem`, `server.key`), and another
/// authority, whose `ca.pem` is `WORKERPOOL_TEST_OTHER_CA`. Keep both while `cmd` runs (they
/// are removed when dropped); `None` without `openssl`.
pub fn https_authorities(cmd: &mut Command) -> Option<(Authority, Authority)> {
    let (ca, other) = (Authority::new()?, Authority::new()?);
    ca.server();
    cmd.env("WORKERPOOL_TEST_TLS_DIR", ca.dir()).env("WORKERPOOL_TEST_OTHER_CA", other.ca());
    Some((ca, other))
}
