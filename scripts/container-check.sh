#!/usr/bin/env bash
# The container check, for a Debian machine with a docker daemon (not part of CI: it makes a
# release build inside docker, 10-20 minutes on two cores, and needs a daemon CI does not have).
#
# Builds the image from the Dockerfile (docs/DEPLOY.md "Container"), runs it, and checks that:
#   - GET /healthz and GET /readyz answer 200;
#   - a text_processing task sent to POST /api/workers/execute completes, run by the bundled
#     demo worker inside the image;
#   - the server and its demo worker run as uid 10001, not root;
#   - the image's HEALTHCHECK command exits 0 by hand, and docker reports the container healthy;
#   - `docker stop -t 45` with a task running ends the server gracefully: exit code 0, within
#     the grace, and the server reports that task finished in the grace period;
# and prints the image's size. Prints PASS or FAIL per check and exits 1 when any check fails.
# Removes the container it started (by id) on any exit; leaves the image.
#
# Base images: pulled from the registry as usual. With WORKERPOOL_LOCAL_BASES=1 (a machine
# that reaches Debian's mirror and crates.io but no container registry) it first makes local
# stand-ins under the names the Dockerfile uses: `debian:bookworm-slim` from
# `debootstrap --variant=minbase` (with the official slim image's apt and dpkg settings: no
# apt caches, no documentation or translations), and `rust:1.95-bookworm` from that with gcc,
# libc6-dev, make, pkg-config, git and this machine's rustup toolchain of that Rust version
# at /usr/local/rustup and /usr/local/cargo (RUSTUP_HOME, CARGO_HOME and PATH as the official
# image sets them), plus the certificate authorities this machine trusts in
# /usr/local/share/ca-certificates (a TLS-inspecting proxy in front of crates.io). A name
# that already exists is used as it is; WORKERPOOL_REBUILD_BASES=1 makes the stand-ins again.
# Needs root and debootstrap for that.
#
# Needs docker (a BuildKit-capable client: the buildx plugin, or a 20.10 client with
# DOCKER_BUILDKIT=1), curl and jq.
#
# Environment:
#   WORKERPOOL_IMAGE          the tag to build (default workerpool:check)
#   WORKERPOOL_CHECK_PORT     the loopback port the server listens on (default: a free one)
#   WORKERPOOL_CONTEXT        the build context (default: the repository root, as it is)
#   WORKERPOOL_REVISION       the revision built in (default: git rev-parse --short HEAD there)
#   WORKERPOOL_NETWORK        host (default): the container shares the host's network and the
#                             server binds 127.0.0.1:PORT; bridge: the image's own bind
#                             (0.0.0.0:3002) published on 127.0.0.1:PORT
#   WORKERPOOL_BUILD_NETWORK  `docker build --network` (e.g. host where the bridge has no route)
#   DEBIAN_MIRROR             debootstrap's mirror (default: the first deb.debian.org-style
#                             URI in /etc/apt/sources.list*, else http://deb.debian.org/debian)
#   DOCKER                    the docker client (default docker)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

docker=${DOCKER:-docker}
image=${WORKERPOOL_IMAGE:-workerpool:check}
context=${WORKERPOOL_CONTEXT:-$root}
network=${WORKERPOOL_NETWORK:-host}
failures=0
cid=""
work=$(mktemp -d "${TMPDIR:-/tmp}/workerpool-container-check.XXXXXX")

missing=()
for tool in "$docker" curl jq; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "FAIL: this check needs docker, curl and jq; missing: ${missing[*]}"
    exit 1
fi
if [[ $network != host && $network != bridge ]]; then
    echo "FAIL: WORKERPOOL_NETWORK is host or bridge, not $network"
    exit 1
fi

# Removes the container this script started (by its id) and the scratch directory.
cleanup() {
    if [[ -n $cid ]]; then
        "$docker" rm -f "$cid" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
# A failure after which nothing else can be checked: the container's last log lines, then exit.
fatal() {
    echo "FAIL: $*"
    if [[ -n $cid ]]; then
        echo "--- last lines of the container's log ---"
        "$docker" logs --tail 40 "$cid" 2>&1 || true
    fi
    exit 1
}

if ! "$docker" info >/dev/null 2>&1; then
    fatal "no docker daemon answers ($docker info): start one first"
fi
# A BuildKit build: the buildx plugin (what `docker build` is from docker 23 on), else a client
# that still has BuildKit built in (20.10) with DOCKER_BUILDKIT=1.
if ! "$docker" buildx version >/dev/null 2>&1; then
    client=$("$docker" version --format '{{.Client.Version}}' 2>/dev/null || echo 0)
    if ((${client%%.*} >= 23)); then
        fatal "docker $client has no buildx plugin, which its BuildKit builds need: install it \
(Docker's docker-buildx-plugin package), or set DOCKER to a 20.10 client (Debian 12's docker.io)"
    fi
fi
export DOCKER_BUILDKIT=1

# The two base images the Dockerfile names: "rust:<version>-<suite>" and "debian:<suite>-slim".
rust_image=$(awk '$1 == "FROM" && $2 ~ /^rust:/ { print $2; exit }' "$context/Dockerfile")
slim_image=$(awk '$1 == "FROM" && $2 ~ /^debian:/ { print $2; exit }' "$context/Dockerfile")
if [[ ! $rust_image =~ ^rust:([0-9]+\.[0-9]+)-([a-z]+)$ ]]; then
    fatal "the build stage's base is not rust:<version>-<suite>: '$rust_image'"
fi
rust_version=${BASH_REMATCH[1]}
suite=${BASH_REMATCH[2]}
if [[ $slim_image != "debian:$suite-slim" ]]; then
    fatal "the run stage's base is not debian:$suite-slim: '$slim_image'"
fi

image_exists() { "$docker" image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror apt uses here (deb822 URIs: or one-line deb entries), for debootstrap.
debian_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null | awk '
            /^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }
            /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')
    echo "${uri:-http://deb.debian.org/debian}"
}

# debian:<suite>-slim: a minbase debootstrap, imported.
make_slim() {
    local mirror rootfs=$work/rootfs
    mirror=$(debian_mirror)
    echo "making $slim_image: debootstrap --variant=minbase $suite from $mirror"
    if ! debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
        tail -20 "$work/debootstrap.log"
        fatal "debootstrap failed (log above)"
    fi
    # What the official slim image has: apt keeps no package or index caches in a layer, and
    # dpkg installs no documentation, manual pages or translations.
    local clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"'
    printf 'DPkg::Post-Invoke { %s; };\nAPT::Update::Post-Invoke { %s; };\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' \
        "$clean" "$clean" >"$rootfs/etc/apt/apt.conf.d/docker-clean"
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'APT::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/linda/*' \
        'path-exclude /usr/share/lintian/overrides/*' 'path-exclude /usr/share/locale/*' \
        'path-include /usr/share/locale/locale.alias' 'path-exclude /usr/share/man/*' \
        >"$rootfs/etc/dpkg/dpkg.cfg.d/docker"
    find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    rm -rf "$rootfs"/usr/share/{groff,info,linda,man}/* "$rootfs"/usr/share/lintian/overrides/*
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/log/*.log
    tar -C "$rootfs" --numeric-owner -c . |
        "$docker" import -c 'CMD ["bash"]' -c 'LABEL org.workerpool.local-base=debootstrap' \
            -m "local stand-in for $slim_image" - "$slim_image" >/dev/null ||
        fatal "docker import of the rootfs failed"
    rm -rf "$rootfs"
}

# rust:<version>-<suite>: the slim stand-in with a C toolchain and this machine's Rust.
make_rust() {
    local home=${RUSTUP_HOME:-$HOME/.rustup} toolchain="" full="" host="" dir rustup_bin p
    for dir in "$home"/toolchains/*; do
        [[ -x $dir/bin/rustc ]] || continue
        if [[ $("$dir/bin/rustc" -V 2>/dev/null) =~ ^rustc\ ($rust_version\.[0-9]+) ]]; then
            toolchain=$(readlink -f "$dir")
            full=${BASH_REMATCH[1]}
            host=$("$dir/bin/rustc" -vV | awk '$1 == "host:" { print $2 }')
            break
        fi
    done
    [[ -n $toolchain ]] || fatal "no rustup toolchain of Rust $rust_version under $home/toolchains"
    rustup_bin=$(command -v rustup || true)
    [[ -n $rustup_bin ]] || fatal "no rustup binary on PATH"
    echo "making $rust_image: $slim_image + gcc + Rust $full from $toolchain"
    local ctx=$work/rust
    mkdir -p "$ctx/rustup/toolchains/$full-$host" "$ctx/cargo/bin" "$ctx/ca"
    # The documentation is most of a toolchain's size, and a build never reads it.
    tar -C "$toolchain" --exclude=./share/doc -c . | tar -C "$ctx/rustup/toolchains/$full-$host" -x
    printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$full-$host" \
        >"$ctx/rustup/settings.toml"
    cp "$(readlink -f "$rustup_bin")" "$ctx/cargo/bin/rustup"
    for p in cargo cargo-clippy cargo-fmt clippy-driver rustc rustdoc rustfmt rust-gdb rust-lldb; do
        ln -s rustup "$ctx/cargo/bin/$p"
    done
    chmod -R a+w "$ctx/rustup" "$ctx/cargo"
    cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
    cat >"$ctx/Dockerfile" <<EOF
FROM $slim_image
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev make pkg-config git \\
    && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV RUSTUP_HOME=/usr/local/rustup \\
    CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$full
COPY rustup /usr/local/rustup
COPY cargo /usr/local/cargo
LABEL org.workerpool.local-base=rustup-copy
RUN rustup --version && cargo --version && rustc --version
EOF
    "$docker" build ${WORKERPOOL_BUILD_NETWORK:+--network "$WORKERPOOL_BUILD_NETWORK"} \
        -t "$rust_image" "$ctx" >"$work/rust-image.log" 2>&1 || {
        tail -20 "$work/rust-image.log"
        fatal "building the $rust_image stand-in failed (log above)"
    }
    rm -rf "$ctx"
}

if [[ ${WORKERPOOL_LOCAL_BASES:-0} == 1 ]]; then
    ((EUID == 0)) || fatal "local base images need root (debootstrap)"
    command -v debootstrap >/dev/null || fatal "local base images need debootstrap (apt-get install debootstrap)"
    rebuild=${WORKERPOOL_REBUILD_BASES:-0}
    if [[ $rebuild == 1 ]] || ! image_exists "$slim_image"; then
        make_slim
        rebuild=1 # the rust stand-in is made from this one
    else
        echo "using the existing $slim_image"
    fi
    if [[ $rebuild == 1 ]] || ! image_exists "$rust_image"; then
        make_rust
    else
        echo "using the existing $rust_image"
    fi
fi

# ===== build =====

revision=${WORKERPOOL_REVISION:-$(git -C "$context" rev-parse --short HEAD 2>/dev/null || true)}
echo "building $image from $context (revision ${revision:-unknown}; log: $work/build.log)"
started=$SECONDS
if ! "$docker" build ${WORKERPOOL_BUILD_NETWORK:+--network "$WORKERPOOL_BUILD_NETWORK"} \
    --build-arg WORKERPOOL_REVISION="$revision" -t "$image" "$context" >"$work/build.log" 2>&1; then
    tail -30 "$work/build.log"
    fatal "docker build failed (log above)"
fi
pass "built $image in $((SECONDS - started)) s"
size=$("$docker" image inspect --format '{{.Size}}' "$image")
echo "image size: $size bytes ($((size / 1024 / 1024)) MiB)"

# ===== run =====

free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    fatal "found no free port"
}
port=${WORKERPOOL_CHECK_PORT:-$(free_port)}
base="http://127.0.0.1:$port"
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
if [[ $network == host ]]; then
    net_args=(--network host -e "WORKERPOOL_BIND=127.0.0.1:$port" -e "WORKERPOOL_URL=$base")
else
    net_args=(-p "127.0.0.1:$port:3002")
fi
cid=$("$docker" run -d --init "${net_args[@]}" -e "WORKERPOOL_API_TOKEN=$token" "$image") ||
    fatal "docker run failed"
echo "container ${cid:0:12} on $base ($network network)"

# The status code of a request: code METHOD PATH [curl arguments].
code() {
    local method=$1 path=$2
    shift 2
    curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X "$method" "$@" "$base$path" 2>/dev/null || true
}
running() { [[ $("$docker" inspect --format '{{.State.Running}}' "$cid" 2>/dev/null) == true ]]; }

for _ in $(seq 1 120); do
    [[ $(code GET /healthz) == 200 ]] && break
    running || fatal "the container exited at start"
    sleep 0.5
done
status=$(code GET /healthz)
if [[ $status == 200 ]]; then pass "GET /healthz: $status"; else fatal "GET /healthz: '$status' after 60 s"; fi
for _ in $(seq 1 120); do
    [[ $(code GET /readyz) == 200 ]] && break
    sleep 0.5
done
status=$(code GET /readyz)
if [[ $status == 200 ]]; then pass "GET /readyz: $status"; else fail "GET /readyz: '$status' after 60 s"; fi

auth=(-H "Authorization: Bearer $token" -H 'content-type: application/json')
status=$(code POST /api/workers/execute -H 'content-type: application/json' -d '{"type":"text_processing"}')
if [[ $status == 401 ]]; then
    pass "execute without the token: $status"
else
    fail "execute without the token: '$status', not 401"
fi
record=$(curl -sS --max-time 60 -w '\n%{http_code}' -X POST "${auth[@]}" \
    -d '{"type":"text_processing","data":{"text":"hello from the container"}}' \
    "$base/api/workers/execute" 2>&1 || true)
status=${record##*$'\n'}
record=${record%$'\n'*}
worker_pid=$(jq -r '.worker_pid // empty' <<<"$record" 2>/dev/null || true)
if [[ $status == 200 ]] && jq -e '.status == "completed" and .result.words == 4' >/dev/null 2>&1 <<<"$record"; then
    pass "execute text_processing: $status, $(jq -c '{status, attempts, worker_id, worker_pid, words: .result.words}' <<<"$record")"
else
    fail "execute text_processing: '$status' $record"
fi

# ===== unprivileged =====

ids=$("$docker" exec "$cid" id 2>&1 || true)
if [[ $ids == "uid=10001(workerpool) gid=10001(workerpool) groups=10001(workerpool)" ]]; then
    pass "docker exec id: $ids"
else
    fail "docker exec id: $ids"
fi
# Every process of the container (the init, the server, its demo workers), from its /proc.
# shellcheck disable=SC2016 # expanded by the container's shell
procs=$("$docker" exec "$cid" sh -c 'for d in /proc/[0-9]*; do
    u=$(awk "/^Uid:/ { print \$2 }" "$d/status" 2>/dev/null) && [ -n "$u" ] || continue
    printf "%s %s\n" "$u" "$(tr "\0\n" "  " <"$d/cmdline" 2>/dev/null | cut -c 1-100)"
done' 2>&1 || true)
while read -r line; do echo "    uid $line"; done <<<"$procs"
if [[ -z $procs ]] || ! awk '$1 != 10001 { bad = 1 } END { exit bad }' <<<"$procs"; then
    fail "a process of the container does not run as uid 10001"
elif grep -q 'workerpool serve' <<<"$procs" && grep -q 'demo-worker' <<<"$procs"; then
    pass "every process of the container, the server and its demo workers too, runs as uid 10001"
else
    fail "the server or its demo workers are missing from the container's processes"
fi
if [[ -n $worker_pid ]]; then
    # shellcheck disable=SC2016 # awk's field
    uid=$("$docker" exec "$cid" awk '/^Uid:/ { print $2 }' "/proc/$worker_pid/status" 2>/dev/null || true)
    if [[ $uid == 10001 ]]; then
        pass "the demo worker that ran the task (pid $worker_pid): uid $uid"
    else
        fail "the demo worker that ran the task (pid $worker_pid): uid '$uid'"
    fi
fi

# ===== health =====

health_cmd=()
while IFS= read -r arg; do
    [[ -n $arg ]] && health_cmd+=("$arg")
done < <("$docker" image inspect --format '{{range .Config.Healthcheck.Test}}{{println .}}{{end}}' "$image")
if [[ ${health_cmd[0]:-} != CMD ]]; then
    fail "the image's HEALTHCHECK is not an exec form: ${health_cmd[*]}"
elif "$docker" exec "$cid" "${health_cmd[@]:1}" >/dev/null 2>"$work/health.err"; then
    pass "the HEALTHCHECK command by hand (${health_cmd[*]:1}): exit 0"
else
    fail "the HEALTHCHECK command by hand: exit $? $(cat "$work/health.err")"
fi
# In nanoseconds; docker's default (30 s) when the HEALTHCHECK names none.
interval=$("$docker" image inspect --format '{{json .Config.Healthcheck.Interval}}' "$image")
[[ $interval =~ ^[0-9]+$ ]] && ((interval > 0)) || interval=30000000000
health=""
for _ in $(seq 1 $((interval * 3 / 1000000000 + 30))); do
    health=$("$docker" inspect --format '{{.State.Health.Status}}' "$cid")
    [[ $health == starting ]] || break
    sleep 1
done
if [[ $health == healthy ]]; then
    pass "docker health status: $health"
else
    fail "docker health status: '$health' $("$docker" inspect --format '{{json .State.Health}}' "$cid")"
fi

# ===== graceful stop =====

# A task that is running when SIGTERM comes: the server lets it finish, then exits 0.
sleeping=$(curl -sS --max-time 10 -X POST "${auth[@]}" \
    -d '{"type":"text_processing","data":{"op":"sleep","ms":3000},"options":{"wait":false}}' \
    "$base/api/workers/execute" | jq -r '.id // empty' || true)
[[ -n $sleeping ]] || fail "could not queue the task to stop under"
sleep 0.5
started=$(date +%s.%N)
"$docker" stop -t 45 "$cid" >/dev/null
took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
exit_code=$("$docker" inspect --format '{{.State.ExitCode}}' "$cid")
oom=$("$docker" inspect --format '{{.State.OOMKilled}}' "$cid")
# When the server's process ended, apart from the daemon's own teardown after it.
finished=$(date -d "$("$docker" inspect --format '{{.State.FinishedAt}}' "$cid")" +%s.%N 2>/dev/null || echo "$started")
exited=$(awk -v a="$started" -v b="$finished" 'BEGIN { printf "%.1f", b - a }')
if [[ $exit_code == 0 ]] && awk -v t="$took" 'BEGIN { exit !(t < 45) }'; then
    pass "docker stop -t 45: exit code $exit_code, the server gone after $exited s, docker stop back after $took s"
else
    fail "docker stop -t 45: exit code $exit_code (OOM killed: $oom), the server gone after $exited s, docker stop back after $took s"
fi
if [[ -n $sleeping ]]; then
    summary=$("$docker" logs "$cid" 2>&1 | grep -E 'SIGTERM received|shutdown complete' || true)
    while read -r line; do echo "    log: $line"; done <<<"$summary"
    if grep -qE 'shutdown complete: [1-9][0-9]* finished in the grace period, 0 running and 0 waiting' <<<"$summary"; then
        pass "the task running at SIGTERM finished in the grace period"
    else
        fail "the server did not report the running task finished in the grace period"
    fi
fi

if ((failures)); then
    echo "--- last lines of the container's log ---"
    "$docker" logs --tail 40 "$cid" 2>&1 || true
    echo "$failures check(s) failed"
    exit 1
fi
echo "all container checks passed"
