//! A private `redis-server` per test, on a free loopback port with a directory of its own, so
//! a test can stop, restart or password-protect it without disturbing the others.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`; stopped and its directory removed when dropped.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    password: Option<String>,
    /// With TLS: the certificate authority's PEM file.
    tls_ca: Option<PathBuf>,
    /// With TLS and client authentication: the client's certificate and key (PEM files).
    tls_client: Option<(PathBuf, PathBuf)>,
}

/// Whether missing tools must fail the test (CI) rather than skip it (a developer machine).
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A tool a test needs is missing (`why` says which, and how to get it): a failure under
/// `CI=true`, a skip, said on stderr, elsewhere. The caller then returns.
pub fn missing_tool(why: &str) {
    assert!(!required(), "{why}");
    eprintln!("skipped: {why}");
}

impl RedisServer {
    /// Starts `redis-server` with `extra` arguments. Without the program, `None` (the test
    /// returns early) on a developer machine, and a failure under `CI=true`.
    pub fn start(extra: &[&str]) -> Option<RedisServer> {
        if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
            missing_tool("redis-server is not installed; scripts/test.sh installs it");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("wp-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis directory");
        let mut args: Vec<String> = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let password = extra.windows(2).find(|w| w[0] == "--requirepass").map(|w| w[1].to_string());
        let mut server =
            RedisServer { port, dir, args, child: None, password, tls_ca: None, tls_client: None };
        server.launch();
        Some(server)
    }

    /// Starts `redis-server` speaking TLS only, with a certificate for 127.0.0.1 signed by a
    /// fresh certificate authority (`support::tls`) in its directory. With
    /// `client_auth` it accepts only clients with a certificate of that authority, and makes
    /// one (see [`RedisServer::tls_client`]).
    pub fn start_tls(client_auth: bool) -> Option<RedisServer> {
        let mut plain = RedisServer::start(&[])?;
        plain.kill();
        let dir = plain.dir.clone();
        let authority = super::tls::Authority::in_dir(&dir)?;
        authority.server();
        if client_auth {
            let (cert, key) = authority.issue("client", "workerpool test client");
            plain.tls_client = Some((cert, key));
        }
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        plain.args =
            ["--port", "0", "--tls-port", &plain.port.to_string(), "--bind", "127.0.0.1", "--save", ""]
                .iter()
                .map(|s| s.to_string())
                .chain([
                    "--tls-cert-file".into(),
                    file("server.pem"),
                    "--tls-key-file".into(),
                    file("server.key"),
                ])
                .chain([
                    "--tls-ca-cert-file".into(),
                    file("ca.pem"),
                    "--tls-auth-clients".into(),
                    if client_auth { "yes" } else { "no" }.into(),
                ])
                .collect();
        plain.tls_ca = Some(dir.join("ca.pem"));
        plain.launch();
        Some(plain)
    }

    /// With client authentication: the client's certificate and key files.
    pub fn tls_client(&self) -> Option<&(PathBuf, PathBuf)> {
        self.tls_client.as_ref()
    }

    /// The PEM file of the certificate authority that signed a TLS server's certificate.
    pub fn tls_ca(&self) -> Option<&std::path::Path> {
        self.tls_ca.as_deref()
    }

    fn launch(&mut self) {
        let mut cmd = Command::new("redis-server");
        if self.tls_ca.is_none() {
            cmd.args(["--port", &self.port.to_string()]);
        }
        let child = cmd
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ping().is_err() {
            assert!(Instant::now() < deadline, "redis-server on port {} did not answer", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.client().get_connection_with_timeout(Duration::from_millis(200))?;
        redis::cmd("PING").query::<String>(&mut conn).map(drop)
    }

    /// `redis://[:password@]127.0.0.1:PORT/` (`rediss://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() { "rediss" } else { "redis" };
        match &self.password {
            Some(pw) => format!("{scheme}://:{pw}@127.0.0.1:{}/", self.port),
            None => format!("{scheme}://127.0.0.1:{}/", self.port),
        }
    }

    pub fn client(&self) -> redis::Client {
        match &self.tls_ca {
            Some(ca) => {
                let root_cert = Some(std::fs::read(ca).expect("read the CA"));
                let client_tls = self.tls_client.as_ref().map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: std::fs::read(cert).expect("read the client certificate"),
                    client_key: std::fs::read(key).expect("read the client key"),
                });
                redis::Client::build_with_tls(self.url(), redis::TlsCertificates { client_tls, root_cert })
                    .expect("redis url")
            }
            None => redis::Client::open(self.url()).expect("redis url"),
        }
    }

    /// A fresh synchronous connection.
    pub fn conn(&self) -> redis::Connection {
        self.client().get_connection_with_timeout(Duration::from_secs(2)).expect("connect to redis")
    }

    /// Kills the server at once (SIGKILL): only what it already wrote to its AOF survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Stalls the server (SIGSTOP): it keeps its connections but answers nothing, and the
    /// kernel still accepts new ones, until the returned guard resumes it (SIGCONT), which it
    /// does when dropped, so a failing test never leaves it stopped.
    pub fn stall(&self) -> Stall {
        let pid = self.child.as_ref().expect("a running redis-server").id();
        assert!(signal(pid, "-STOP"), "kill -STOP {pid} failed");
        Stall { pid, resumed: false }
    }
}

/// A stalled `redis-server`; see [`RedisServer::stall`].
pub struct Stall {
    pid: u32,
    resumed: bool,
}

impl Stall {
    /// Lets the server run again.
    pub fn resume(mut self) {
        self.resume_now();
    }

    fn resume_now(&mut self) {
        if !self.resumed {
            self.resumed = true;
            // No assertion here: a panic while a failing test unwinds would abort the run.
            if !signal(self.pid, "-CONT") {
                eprintln!("kill -CONT {} failed", self.pid);
            }
        }
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.resume_now();
    }
}

/// Sends `signal` to `pid`; says whether it was delivered.
fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill").args([signal, &pid.to_string()]).status().is_ok_and(|s| s.success())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
