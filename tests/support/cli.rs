//! The binary's client commands as a test runs them: a clean environment, a bound on time,
//! and what they printed.

use std::process::Command;
use std::time::Duration;

use super::bounded::run_bounded;

/// The longest any one client command may take in a test.
pub const LIMIT: Duration = Duration::from_secs(60);

/// What a finished command left.
#[derive(Debug)]
pub struct Ran {
    /// Its exit code (`None`: ended by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `workerpool ARGS` with none of the client's environment (server, token, trust, logging).
pub fn workerpool(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_workerpool"));
    cmd.args(args);
    for var in ["WORKERPOOL_URL", "WORKERPOOL_API_TOKEN", "WORKERPOOL_CA_FILE", "RUST_LOG", "LOG_FORMAT"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` to its end; fails the test when it runs past [`LIMIT`].
pub fn run(mut cmd: Command) -> Ran {
    let (out, timed_out) = run_bounded(&mut cmd, LIMIT);
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!timed_out, "{cmd:?} ran past {LIMIT:?}: {ran:#?}");
    eprintln!("{cmd:?} → {ran:#?}");
    ran
}
