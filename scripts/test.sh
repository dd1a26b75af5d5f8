#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# Python venvs (redis-py, Schemathesis) need the venv module with ensurepip.
if ! command -v python3 >/dev/null; then
    need_apt+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip' 2>/dev/null; then
    need_apt+=(python3-venv)
fi
# Each Redis test starts its own redis-server on a free loopback port.
command -v redis-server >/dev/null || need_apt+=(redis-server)
# The TLS tests make their certificates with openssl; tests/tls.rs calls the HTTPS server
# with curl (HTTP/2 by ALPN).
command -v openssl >/dev/null || need_apt+=(openssl)
curl --version 2>/dev/null | grep -q HTTP2 || need_apt+=(curl)
# The clock-skew test runs an instance under libfaketime.
dpkg -s libfaketime >/dev/null 2>&1 || need_apt+=(libfaketime)
# The dashboard test drives a headless Chromium over WebDriver.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# The dashboard's own functions are unit-tested under node --test.
command -v node >/dev/null || need_apt+=(nodejs)
# The deployment checks (tests/deploy.rs, tests/prometheus.rs): promtool and a real Prometheus
# (Debian's package; its service is not needed), and systemd-analyze for the service unit.
command -v promtool >/dev/null && command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
if ((${#need_apt[@]})); then
    echo "installing ${need_apt[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# redis-py, for the Python producer example that the suite runs (docs/REDIS.md).
py_env=target/redis-py
if ! "$py_env/bin/python" -c 'import redis' 2>/dev/null; then
    echo "installing redis-py into $py_env" >&2
    rm -rf "$py_env"
    if ! { python3 -m venv "$py_env" && "$py_env/bin/pip" install -q 'redis>=4.3'; }; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-redis >/dev/null
        rm -rf "$py_env" && mkdir -p "$py_env/bin" && ln -s /usr/bin/python3 "$py_env/bin/python"
    fi
fi
export WORKERPOOL_TEST_PYTHON="$PWD/$py_env/bin/python"

# Pinned Python packages in a venv of their own, installed once: `venv_install DIR CHECK
# PACKAGE...`, where the function CHECK succeeds when DIR already holds the right versions. A
# run that cannot install them leaves their test to fail under CI=true (and to skip elsewhere).
venv_install() {
    local dir=$1 check=$2
    shift 2
    "$check" >/dev/null 2>&1 && return 0
    echo "installing $* into $dir" >&2
    rm -rf "$dir"
    if ! { python3 -m venv "$dir" && "$dir/bin/pip" install -q "$@"; }; then
        echo "cannot install $*" >&2
        rm -rf "$dir"
    fi
}

# Schemathesis, for tests/schemathesis.rs; pinned, so that a seed generates the same requests
# on every machine.
st_version=4.32.5
st_env=target/schemathesis
st_installed() { [[ "$("$st_env/bin/st" --version)" == *"version $st_version" ]]; }
venv_install "$st_env" st_installed "schemathesis==$st_version"
export WORKERPOOL_TEST_SCHEMATHESIS="$PWD/$st_env/bin/st"

# Selenium, for tests/dashboard.rs (it drives the Debian chromium through chromedriver; it
# downloads nothing: SE_OFFLINE is set by the test).
selenium_version=4.38.0
browser_env=target/browser-py
selenium_installed() {
    "$browser_env/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$selenium_version')"
}
venv_install "$browser_env" selenium_installed "selenium==$selenium_version"
export WORKERPOOL_TEST_BROWSER_PYTHON="$PWD/$browser_env/bin/python"

# pytest, for the Python worker library's own suite (tests/sdk_python.rs runs it against the
# real binary), and wheel, to build the library's wheel.
pytest_version=8.3.4
sdk_env=target/sdk-py
sdk_installed() {
    "$sdk_env/bin/python" -c "import pytest, wheel, sys; sys.exit(pytest.__version__ != '$pytest_version')"
}
venv_install "$sdk_env" sdk_installed "pytest==$pytest_version" wheel
export WORKERPOOL_TEST_SDK_PYTHON="$PWD/$sdk_env/bin/python"

cargo test --workspace --all-targets "$@"
# The library alone, without Redis or NVML: its own tests, the paused-clock lifecycle suite
# among them, on the lean build an embedding application gets.
cargo test -p workerpool-actors --no-default-features --features test-util --all-targets "$@"
# Doc tests (README and API examples) run separately: --all-targets leaves them out.
cargo test --workspace --doc "$@"

# Packaging, on a whole run only (not on a filtered one such as `scripts/test.sh cli_`).
# `cargo install --path .` gives a working binary: it serves its embedded default, from a
# directory without the project's config, and runs tasks on the demo worker inside it. (Its
# build is one more debug build: dev-dependencies' features are not in it.) The library crate
# packages and builds on its own, as crates.io would take it.
if (( $# == 0 )); then
    install_root="$PWD/target/install-check"
    cargo install --path . --debug --locked --force --quiet --root "$install_root"
    installed="$install_root/bin/workerpool"
    revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    version="$("$installed" --version)"
    [[ "$version" == "workerpool "*" (revision $revision)" ]] || { echo "--version says: $version" >&2; exit 1; }
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    (cd /tmp && exec "$installed" serve --bind "127.0.0.1:$port") >target/install-check/serve.log 2>&1 &
    serve_pid=$!
    url="http://127.0.0.1:$port"
    for _ in $(seq 100); do "$installed" status --server "$url" >/dev/null 2>&1 && break; sleep 0.1; done
    result="$("$installed" submit -q --server "$url" --type text_processing --data '{"op":"echo","n":7}')" \
        || { kill "$serve_pid"; cat target/install-check/serve.log >&2; exit 1; }
    kill "$serve_pid"
    wait "$serve_pid" || true
    grep -q '"n": 7' <<<"$result" || { echo "the installed binary answered: $result" >&2; exit 1; }
    # A working tree with changes not yet committed is packaged as it is.
    dirty=()
    [[ -z "$(git status --porcelain 2>/dev/null)" ]] || dirty=(--allow-dirty)
    cargo publish --dry-run --locked --quiet -p workerpool-actors "${dirty[@]}"
fi
