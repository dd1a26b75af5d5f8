//! Hands the git revision to the build as `WORKERPOOL_REVISION` (for `workerpool_build_info`):
//! one given in the environment, else `git rev-parse --short HEAD`, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=WORKERPOOL_REVISION");
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
        Some(String::from_utf8(out.stdout).ok()?.trim().to_string()).filter(|s| !s.is_empty())
    };
    // Rebuild when HEAD moves: its file, and the branch it points to.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={path}");
    }
    let revision = std::env::var("WORKERPOOL_REVISION")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]));
    let revision = revision.unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=WORKERPOOL_REVISION={revision}");
}
