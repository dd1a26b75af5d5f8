#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA driver (not part of CI).
#
# Builds the server (release), starts it on a loopback port with two GPU types
# (gpu_required, gpus_per_worker = 1, gpu_memory_mb = 1024) run by the bundled demo worker,
# and through the REST API checks that:
#   - each type's gpu_alloc task ran on the device its worker was given: the worker's `gpus`
#     in GET /api/workers/resources, the device `nvidia-smi --query-compute-apps` shows the
#     worker's pid on, and the device the task answers, are one and the same;
#   - a task that allocates past gpu_memory_mb fails with gpu_memory_limit_exceeded and its
#     worker is gone.
# Prints PASS or FAIL per check and exits 1 when any check fails. Without a driver it prints
# "SKIP: no NVIDIA driver" and exits 0. Needs nvidia-smi, curl and jq (and cargo, unless
# WORKERPOOL_BIN names a built binary). Stops only the processes it started, on any exit.
#
# Environment: WORKERPOOL_CHECK_PORT (default 39170), WORKERPOOL_BIN (skip the build).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "SKIP: no NVIDIA driver (nvidia-smi is missing or finds no device)"
    exit 0
fi
missing=()
for tool in curl jq; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ -z ${WORKERPOOL_BIN:-} ]] && ! command -v cargo >/dev/null; then
    missing+=(cargo)
fi
if ((${#missing[@]})); then
    echo "FAIL: this check needs curl and jq (and cargo to build); missing: ${missing[*]}"
    exit 1
fi

port=${WORKERPOOL_CHECK_PORT:-39170}
base="http://127.0.0.1:$port"
work=$(mktemp -d "${TMPDIR:-/tmp}/workerpool-gpu-check.XXXXXX")
server_pid=""
worker_pids=()
failures=0

# Stops the server (and, should it not stop them itself, the workers it started), then
# removes the scratch directory.
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    for pid in "${worker_pids[@]}"; do
        # Only a process that is still this server's demo worker (pids are reused).
        if grep -qa demo-worker "/proc/$pid/cmdline" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# Whether the server answers (GET /api/workers/stats, which every version has).
alive() { curl -fsS --max-time 2 -o /dev/null "$base/api/workers/stats" 2>/dev/null; }

# Answers the body of GET $1 (a path), or nothing.
get() { curl -fsS --max-time 10 "$base$1" 2>/dev/null || true; }

# Submits a gpu_alloc of $2 MiB held $3 ms to type $1 without waiting; answers the task id.
submit() {
    local body
    body=$(jq -nc --arg type "$1" --argjson mb "$2" --argjson ms "$3" \
        '{type: $type, data: {op: "gpu_alloc", mb: $mb, ms: $ms}, options: {wait: false}}')
    curl -sS --max-time 10 -H 'content-type: application/json' -d "$body" \
        "$base/api/workers/execute" | jq -r '.id // empty'
}

# Polls task $1 until jq filter $2 holds on its record (at most $3 seconds); answers the record.
wait_task() {
    local record=""
    for _ in $(seq 1 $(($3 * 10))); do
        record=$(get "/api/tasks/$1")
        if [[ -n $record ]] && jq -e "$2" >/dev/null 2>&1 <<<"$record"; then
            echo "$record"
            return 0
        fi
        sleep 0.1
    done
    echo "$record"
    return 1
}

# The pid of the worker running task $1, polled for up to 30 s: from the task's record, or
# from the live workers of /api/workers/status. Fails at once when the task has ended.
task_pid() {
    local pid record
    for _ in $(seq 1 300); do
        record=$(get "/api/tasks/$1")
        if jq -e '.status != "queued" and .status != "running"' >/dev/null 2>&1 <<<"$record"; then
            return 1
        fi
        pid=$(jq -r 'select(.status == "running") | .worker_pid // empty' <<<"$record" 2>/dev/null || true)
        if [[ -z $pid ]]; then
            pid=$(get /api/workers/status | jq -r --arg id "$1" '.workers[]? | select(.task_id == $id) | .pid')
        fi
        if [[ -n $pid ]]; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# The device nvidia-smi shows process $1 using at least $2 MiB on, polled for up to 20 s.
smi_device() {
    local line
    for _ in $(seq 1 200); do
        line=$(nvidia-smi --query-compute-apps=pid,gpu_uuid,used_memory --format=csv,noheader,nounits |
            awk -F', *' -v pid="$1" -v mb="$2" '$1 == pid && $3 + 0 >= mb + 0 { print $2; exit }')
        if [[ -n $line ]]; then
            echo "$line"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# The devices /resources lists for the worker with pid $1, polled for up to 5 s (ten samples).
given_devices() {
    local gpus
    for _ in $(seq 1 50); do
        gpus=$(get /api/workers/resources |
            jq -r --argjson pid "$1" '.workers[]? | select(.pid == $pid) | (.gpus // []) | join(",")')
        if [[ -n $gpus ]]; then
            echo "$gpus"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ===== build and start =====

bin=${WORKERPOOL_BIN:-target/release/workerpool}
if [[ -z ${WORKERPOOL_BIN:-} ]]; then
    echo "building the server (release)"
    cargo build --release --bin workerpool
fi
if alive; then
    echo "FAIL: something already answers on $base (set WORKERPOOL_CHECK_PORT)"
    exit 1
fi

cat >"$work/gpu-check.toml" <<'EOF'
# Two GPU types run by the bundled demo worker; nothing starts before a task asks.
[pool]
max_workers = 4
min_workers = 0
resource_monitor_interval_ms = 500
graceful_shutdown_timeout_ms = 5000
gpu_placement = "spread"

[types.gpu_alpha]
weight = "medium"
max_concurrent = 1
gpu_required = true
gpus_per_worker = 1
gpu_memory_mb = 1024
timeout_ms = 120000
max_retries = 0

[types.gpu_beta]
weight = "medium"
max_concurrent = 1
gpu_required = true
gpus_per_worker = 1
gpu_memory_mb = 1024
timeout_ms = 120000
max_retries = 0
EOF

echo "starting $bin on $base (log: $work/server.log)"
"$bin" serve --config "$work/gpu-check.toml" --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    alive && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        fail "the server exited at start:"
        tail -n 20 "$work/server.log"
        exit 1
    fi
    sleep 0.1
done
if ! alive; then
    fail "the server did not answer within 30 s"
    tail -n 20 "$work/server.log"
    exit 1
fi
pass "the server started with GPU types (pid $server_pid)"

# ===== each worker uses the device it was given =====

# 512 MiB held 15 s on each type at once: time to see both in nvidia-smi and /resources.
declare -A ids pids
for type in gpu_alpha gpu_beta; do
    ids[$type]=$(submit "$type" 512 15000)
    if [[ -z ${ids[$type]} ]]; then
        fail "$type: the execute request was refused"
        tail -n 5 "$work/server.log"
    fi
done
# Both workers are found first, while both tasks hold their memory.
for type in gpu_alpha gpu_beta; do
    id=${ids[$type]}
    [[ -n $id ]] || continue
    if pids[$type]=$(task_pid "$id"); then
        worker_pids+=("${pids[$type]}")
    else
        fail "$type: task $id ended before its worker was seen, or never ran: $(get "/api/tasks/$id" | jq -c '{status, error}' 2>/dev/null)"
    fi
done
declare -A given
for type in gpu_alpha gpu_beta; do
    pid=${pids[$type]:-}
    [[ -n $pid ]] || continue
    if ! devices=$(given_devices "$pid"); then
        fail "$type: /resources gives worker pid $pid no gpus"
        continue
    fi
    given[$type]=${devices%%,*}
    pass "$type: worker pid $pid was given $devices"
    if used=$(smi_device "$pid" 512); then
        if [[ $used == "${given[$type]}" ]]; then
            pass "$type: nvidia-smi shows pid $pid using its device $used"
        else
            fail "$type: nvidia-smi shows pid $pid on $used, but it was given ${given[$type]}"
        fi
    else
        fail "$type: nvidia-smi lists no process $pid with 512 MiB or more (a container without the host's PID namespace cannot see it)"
    fi
done
for type in gpu_alpha gpu_beta; do
    id=${ids[$type]}
    [[ -n $id && -n ${given[$type]:-} ]] || continue
    if ! record=$(wait_task "$id" '.status != "queued" and .status != "running"' 60); then
        fail "$type: task $id did not finish"
        continue
    fi
    status=$(jq -r .status <<<"$record")
    device=$(jq -r '.result.device // empty' <<<"$record")
    if [[ $status == completed && $device == "${given[$type]}" ]]; then
        pass "$type: the task completed and allocated on $device"
    else
        fail "$type: task ended $status on '$device', expected completed on ${given[$type]}: $(jq -c '{error, result}' <<<"$record")"
    fi
done

# ===== past gpu_memory_mb, the worker is killed =====

id=$(submit gpu_alpha 2048 30000)
if [[ -z $id ]]; then
    fail "the over-limit execute request was refused"
elif record=$(wait_task "$id" '.status != "queued" and .status != "running"' 60); then
    pid=$(jq -r '.worker_pid // empty' <<<"$record")
    [[ -n $pid ]] && worker_pids+=("$pid")
    reason=$(jq -r '[.failure_reason, .error] | map(select(. != null)) | join(" ")' <<<"$record")
    status=$(jq -r .status <<<"$record")
    if [[ $status =~ ^(failed|dead)$ && $reason == *gpu_memory_limit_exceeded* ]]; then
        pass "2048 MiB on a 1024 MiB type: task $status with '$reason'"
        if [[ -n $pid ]] && grep -qa demo-worker "/proc/$pid/cmdline" 2>/dev/null; then
            fail "the over-limit worker (pid $pid) is still running"
        elif [[ -n $pid ]]; then
            pass "the over-limit worker (pid $pid) was stopped"
        fi
    else
        fail "2048 MiB on a 1024 MiB type: task $status with '$reason', expected gpu_memory_limit_exceeded"
    fi
else
    fail "the over-limit task did not end within 60 s (it holds for 30 s): $(jq -c '{status, error}' <<<"$record" 2>/dev/null)"
fi

if ((failures)); then
    echo "$failures check(s) failed; the server's log:"
    tail -n 30 "$work/server.log"
    exit 1
fi
echo "all GPU checks passed"
