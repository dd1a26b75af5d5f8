//! The Python worker library (`sdk/python`): its pytest suite against the real binary, and its
//! wheel. The interpreter comes from `WORKERPOOL_TEST_SDK_PYTHON` (default
//! `target/sdk-py/bin/python`, a virtual environment with pytest); without it or without
//! pytest the tests skip, and fail under `CI=true`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::bounded::{run_ok, text};
use support::redis_server::missing_tool;
use support::repo;

/// How long the whole pytest suite may take.
const SUITE_LIMIT: Duration = Duration::from_secs(180);

/// The interpreter, when it runs and has pytest; otherwise `None` (a skip) or a failure (CI).
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("WORKERPOOL_TEST_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/sdk-py/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import pytest, sys; assert sys.version_info >= (3, 9)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = format!(
            "{} with pytest (Python 3.9 or newer) is missing; set WORKERPOOL_TEST_SDK_PYTHON or create it: \
             python3 -m venv target/sdk-py && target/sdk-py/bin/pip install pytest",
            python.display()
        );
        missing_tool(&why);
        return None;
    }
    Some(python)
}

#[test]
fn the_python_worker_library_passes_its_tests_against_the_real_server() {
    let Some(python) = python() else { return };
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "sdk/python/tests"])
        .current_dir(repo())
        .env("WORKERPOOL_BIN", env!("CARGO_BIN_EXE_workerpool"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTHONPATH")
        .env_remove("WORKERPOOL_CA_FILE");
    // The HTTPS cases (test_https.py): a server certificate from one authority, and another
    // authority the client must not take for it.
    let authorities = support::tls::https_authorities(&mut cmd);
    let output = run_ok(&mut cmd, SUITE_LIMIT, "pytest");
    let log = text(&output);
    println!("{log}");
    assert!(log.contains(" passed"), "{log}");
    if authorities.is_some() {
        assert!(!log.contains(" skipped"), "{log}");
    }
}

/// Copies the package's sources (not build outputs) to `to`, so the build writes nothing into
/// the checkout.
fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if matches!(name.as_ref(), "__pycache__" | "build" | "dist" | ".pytest_cache" | "tests")
            || name.ends_with(".egg-info")
        {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_sources(&path, &to.join(&*name));
        } else {
            std::fs::copy(&path, to.join(&*name)).expect("copy");
        }
    }
}

#[test]
fn the_python_worker_library_packages_offline() {
    let Some(python) = python() else { return };
    let tmp = std::env::temp_dir().join(format!("wp-sdk-wheel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (src, sdists, wheels, site) =
        (tmp.join("src"), tmp.join("sdist"), tmp.join("wheels"), tmp.join("site"));
    copy_sources(&repo().join("sdk/python"), &src);

    // The source distribution: setuptools alone, no network. It proves pyproject.toml is
    // valid and finds the package under src/.
    let mut sdist = Command::new(&python);
    sdist
        .args(["-c", "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"])
        .arg(&sdists)
        .current_dir(&src);
    let output = run_ok(&mut sdist, Duration::from_secs(120), "build_sdist");
    let log = text(&output);
    let name = String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().trim().to_string();
    assert_eq!(name, "workerpool-worker-0.1.0.tar.gz", "{log}");
    let listing = Command::new("tar").arg("tzf").arg(sdists.join(&name)).output().expect("tar");
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    for file in ["__init__.py", "worker.py", "client.py", "py.typed"] {
        let path = format!("workerpool-worker-0.1.0/src/workerpool_worker/{file}");
        assert!(listing.lines().any(|l| l == path), "{path} is not in the sdist:\n{listing}");
    }

    // The wheel: setuptools builds one offline only with bdist_wheel (setuptools 70.1 or
    // newer, or the `wheel` package, which scripts/test.sh installs); without it the wheel
    // fails under CI=true and is skipped elsewhere.
    let can_wheel = Command::new(&python)
        .args(["-c", "import importlib.util as u, sys; sys.exit(0 if u.find_spec('wheel') or u.find_spec('setuptools.command.bdist_wheel') else 1)"])
        .status()
        .is_ok_and(|s| s.success());
    if !can_wheel {
        missing_tool(&format!(
            "{} has no bdist_wheel (setuptools < 70.1 without the `wheel` package); scripts/test.sh installs \
             the `wheel` package",
            python.display()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    }
    let offline = ["--no-deps", "--no-index", "--no-build-isolation", "--disable-pip-version-check", "-q"];
    let mut build = Command::new(&python);
    build.args(["-m", "pip", "wheel"]).args(offline).arg(&src).arg("-w").arg(&wheels);
    run_ok(&mut build, Duration::from_secs(120), "pip wheel");
    let wheel = std::fs::read_dir(&wheels)
        .expect("the wheel folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("a .whl file");
    let name = wheel.file_name().unwrap_or_default().to_string_lossy().to_string();
    assert!(name.starts_with("workerpool_worker-0.1.0-") && name.ends_with("-none-any.whl"), "{name}");
    // It installs and imports from where it was installed.
    let mut install = Command::new(&python);
    install.args(["-m", "pip", "install"]).args(offline).arg("--target").arg(&site).arg(&wheel);
    run_ok(&mut install, Duration::from_secs(120), "pip install");
    let check = Command::new(&python)
        .args([
            "-c",
            "import workerpool_worker as w; print(w.__file__); w.Worker; w.Client; w.Fatal; w.Retryable",
        ])
        .env("PYTHONPATH", &site)
        .current_dir(&tmp)
        .output()
        .expect("python");
    let imported = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(check.status.success(), "{}", text(&check));
    assert!(Path::new(imported.trim()).starts_with(&site), "imported from {imported}");
    let _ = std::fs::remove_dir_all(&tmp);
}
