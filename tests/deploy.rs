//! The deployment files under `deploy/` (and the `Dockerfile`) checked by the tools that read
//! them: `promtool` for the alert rules and scrape configurations, `systemd-analyze verify`
//! for the service unit, and plain reading for what no tool here checks (the dashboard's
//! import shape, the stop timeouts against the shutdown grace, the compose file's mounts).
//! `tests/prometheus.rs` runs the same files against a live server and a live Prometheus.

mod support;

use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::bounded::text;
use support::prometheus::{read, root};
use support::redis_server::missing_tool;

/// Runs `program` with `args`; `None` (a skip, or a failure under `CI=true`) when the program
/// is not installed.
fn tool(program: &str, args: &[&str]) -> Option<Output> {
    match Command::new(program).args(args).current_dir(root()).stdin(Stdio::null()).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            missing_tool(&format!("{program} is not installed; scripts/test.sh installs it"));
            None
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

/// `graceful_shutdown_timeout_ms` of the default configuration, in seconds.
fn grace_s() -> f64 {
    let config: toml::Table =
        toml::from_str(&read("config/default.toml")).expect("config/default.toml parses");
    let ms =
        config["pool"]["graceful_shutdown_timeout_ms"].as_integer().expect("graceful_shutdown_timeout_ms");
    ms as f64 / 1000.0
}

/// What the server needs beyond the grace to stop: the 2 s a worker gets between SIGTERM and
/// SIGKILL (`KILL_GRACE` in actors/src/worker/process.rs), and a margin.
const STOP_MARGIN_S: f64 = 5.0;

/// The value of the first `key=value` (or `key: value`) line whose key is `key`.
fn setting<'a>(file: &'a str, key: &str, sep: char) -> Option<&'a str> {
    file.lines().find_map(|l| {
        let (k, v) = l.split_once(sep)?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// Seconds of a systemd/compose duration: `45`, `45s`, `1min`, `1m30s`.
fn seconds(value: &str) -> f64 {
    let (mut total, mut number) = (0.0, String::new());
    let mut chars = value.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek().filter(|n| n.is_ascii_alphabetic()) {
            unit.push(n);
            chars.next();
        }
        let n: f64 = number.parse().unwrap_or_else(|_| panic!("a number before {unit} in {value:?}"));
        number.clear();
        total += n * match unit.as_str() {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            other => panic!("unknown unit {other:?} in {value:?}"),
        };
    }
    if !number.is_empty() {
        total += number.parse::<f64>().expect("seconds");
    }
    total
}

#[test]
fn promtool_accepts_the_alert_rules_and_the_scrape_configs() {
    let Some(out) = tool("promtool", &["check", "rules", "deploy/prometheus/alerts.yml"]) else { return };
    assert!(out.status.success(), "promtool check rules: {}", text(&out));
    // The configs name `alerts.yml` relatively: promtool (like Prometheus) resolves rule files
    // against the config file's directory, so this also proves the compose mount layout.
    for config in ["deploy/prometheus/prometheus.yml", "deploy/prometheus/prometheus-compose.yml"] {
        let out = tool("promtool", &["check", "config", config]).expect("promtool ran once already");
        let said = text(&out);
        assert!(out.status.success(), "promtool check config {config}: {said}");
        assert!(said.contains("1 rule files found"), "{config} loads the alert rules: {said}");
    }
}

#[test]
fn the_alert_rules_wait_and_say_what_to_do() {
    let rules = read("deploy/prometheus/alerts.yml");
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    for name in [
        "WorkerpoolInstanceDown",
        "WorkerpoolQueueBackingUp",
        "WorkerpoolOldestWaitHigh",
        "WorkerpoolHighErrorRate",
        "WorkerpoolRestartStorm",
        "WorkerpoolMemoryKills",
        "WorkerpoolRedisDown",
        "WorkerpoolNoWorkerCanStart",
    ] {
        assert!(alerts.contains(&name), "alerts.yml has {name}: {alerts:?}");
    }
    let count = |prefix: &str| rules.lines().filter(|l| l.trim_start().starts_with(prefix)).count();
    assert_eq!(count("for: "), alerts.len(), "every alert has a `for:` duration");
    assert_eq!(count("description: "), alerts.len(), "every alert has a description");
    assert_eq!(count("summary: "), alerts.len(), "every alert has a summary");
    assert_eq!(count("severity: "), alerts.len(), "every alert has a severity");
    assert!(rules.contains(r#"up{job="workerpool"} == 0"#), "instance down is `up == 0`");
}

#[test]
fn the_service_unit_verifies_and_stops_within_the_grace() {
    let unit = read("deploy/systemd/workerpool.service");
    let grace = grace_s();
    let stop = seconds(setting(&unit, "TimeoutStopSec", '=').expect("TimeoutStopSec"));
    assert!(stop >= grace + STOP_MARGIN_S, "TimeoutStopSec {stop}s leaves room after the {grace}s grace");
    for (key, value) in [
        ("KillSignal", "SIGTERM"),
        ("KillMode", "mixed"),
        ("Restart", "on-failure"),
        ("User", "workerpool"),
        ("ExecStart", "/usr/local/bin/workerpool serve --config /etc/workerpool/workerpool.toml"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ] {
        assert_eq!(setting(&unit, key, '='), Some(value), "{key} in workerpool.service");
    }
    assert!(setting(&unit, "MemoryDenyWriteExecute", '=').is_none(), "JIT workers need W+X memory");
    assert!(setting(&unit, "EnvironmentFile", '=').is_some(), "secrets come from an environment file");

    // systemd-analyze checks that the binary exists and is executable: verify a copy that
    // starts the binary under test. It reports bad lines on stderr and still exits 0, so any
    // line naming the unit is a failure.
    if Command::new("systemd-analyze").arg("--version").stdout(Stdio::null()).status().is_err() {
        eprintln!("skipped: systemd-analyze is not installed; workerpool.service was not verified");
        return;
    }
    let dir = std::env::temp_dir().join(format!("wp-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for the unit");
    let copy = dir.join("workerpool.service");
    let bin = env!("CARGO_BIN_EXE_workerpool");
    let patched = unit.replace("ExecStart=/usr/local/bin/workerpool ", &format!("ExecStart={bin} "));
    assert_ne!(patched, unit, "ExecStart was pointed at the test binary");
    std::fs::write(&copy, patched).expect("write the unit copy");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let said = text(&out);
    let complaints: Vec<&str> = said.lines().filter(|l| l.contains("workerpool.service")).collect();
    assert!(out.status.success() && complaints.is_empty(), "systemd-analyze verify: {said}");
}

#[test]
fn supervisor_and_compose_stop_after_the_grace() {
    let grace = grace_s();
    let conf = read("deploy/supervisor/workerpool.conf");
    assert_eq!(setting(&conf, "stopsignal", '='), Some("TERM"));
    let wait = seconds(setting(&conf, "stopwaitsecs", '=').expect("stopwaitsecs"));
    assert!(wait >= grace + STOP_MARGIN_S, "stopwaitsecs {wait} leaves room after the {grace}s grace");
    // The server stops its workers itself: a group TERM would cut their tasks short.
    assert_eq!(setting(&conf, "stopasgroup", '='), Some("false"));
    assert_eq!(setting(&conf, "killasgroup", '='), Some("true"));
    assert!(conf.contains("exec /usr/local/bin/workerpool serve"), "the shell hands over to the server");

    let compose = read("deploy/compose.yml");
    let period = seconds(setting(&compose, "stop_grace_period", ':').expect("stop_grace_period"));
    assert!(period >= grace + STOP_MARGIN_S, "stop_grace_period {period}s leaves room after the grace");
}

#[test]
fn compose_mounts_files_that_exist() {
    let compose = read("deploy/compose.yml");
    let deploy = root().join("deploy");
    let mut mounts = 0;
    for line in compose.lines() {
        let Some(source) = line.trim().strip_prefix("- ./").and_then(|m| m.split(':').next()) else {
            continue;
        };
        assert!(deploy.join(source).exists(), "deploy/compose.yml mounts deploy/{source}, which exists");
        mounts += 1;
    }
    assert!(mounts >= 5, "the scrape config, the rules and Grafana's provisioning are mounted");
    for needed in [
        "./prometheus/prometheus-compose.yml:/etc/prometheus/prometheus.yml",
        "./prometheus/alerts.yml:/etc/prometheus/alerts.yml",
        "./grafana/workerpool.json:",
        "context: ..",
        "redis:",
        "grafana:",
    ] {
        assert!(compose.contains(needed), "deploy/compose.yml has {needed}");
    }
    // The Grafana provider reads the directory the dashboard is mounted into.
    let provider = read("deploy/grafana/provisioning/dashboards/workerpool.yml");
    let path = setting(&provider, "path", ':').expect("the provider's path");
    assert!(compose.contains(&format!("./grafana/workerpool.json:{path}/workerpool.json")));
    let datasource = read("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert!(datasource.contains("url: http://prometheus:9090"), "the data source is the compose Prometheus");
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_unprivileged() {
    let file = read("Dockerfile");
    let froms: Vec<&str> = file.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a run stage: {froms:?}");
    assert!(froms[0].starts_with("FROM rust:") && froms[0].ends_with(" AS build"), "{}", froms[0]);
    assert!(froms[1].starts_with("FROM debian:") && froms[1].contains("-slim"), "{}", froms[1]);
    let user = setting(&file, "USER", ' ').expect("USER");
    assert!(!user.starts_with("root") && !user.starts_with('0'), "runs as {user}");
    assert_eq!(setting(&file, "EXPOSE", ' '), Some("3002"));
    assert!(file.contains("WORKERPOOL_BIND=0.0.0.0:3002"), "listens on every interface inside");
    assert!(file.contains("HEALTHCHECK") && file.contains(r#""status""#), "the binary checks itself");
    // Every file copied from the context exists and is not left out by .dockerignore.
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> =
        ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for line in file.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from=")) {
        let source = line.split_whitespace().nth(1).expect("a COPY source");
        if source != "." {
            assert!(root().join(source).exists(), "COPY {source} exists");
        }
        assert!(!ignored.iter().any(|i| source.starts_with(i.trim_end_matches('/'))), "{source} is ignored");
    }
    for needed in ["target/", ".git/"] {
        assert!(ignored.contains(&needed), ".dockerignore leaves out {needed}");
    }
    // The binary embeds these; the build context must keep them.
    for kept in ["docs/openapi.json", "README.md", "src", "actors"] {
        assert!(
            !ignored.iter().any(|i| kept.starts_with(i.trim_end_matches('/'))),
            "{kept} is in the context"
        );
    }
}

#[test]
fn the_dashboard_is_importable() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/workerpool.json")).expect("valid JSON");
    let input = &dashboard["__inputs"][0];
    assert_eq!(input["type"], "datasource");
    assert_eq!(input["pluginId"], "prometheus");
    let vars = dashboard["templating"]["list"].as_array().expect("template variables");
    let var =
        |name: &str| vars.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("variable {name}"));
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["instance", "type"] {
        assert_eq!(var(name)["type"], "query");
        assert_eq!(var(name)["datasource"]["uid"], "${datasource}");
    }
    assert!(dashboard["uid"].is_string() && dashboard["id"].is_null(), "importable: a uid, no id");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().expect("a panel id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let mut titles = Vec::new();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().expect("a title");
        titles.push(title.to_lowercase());
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title} uses the data source variable");
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{title} has targets"));
        assert!(!targets.is_empty(), "{title} has queries");
        for t in targets {
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}: a query");
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}'s queries use the variable");
        }
        let pos = &panel["gridPos"];
        assert!(pos["x"].as_u64().unwrap() + pos["w"].as_u64().unwrap() <= 24, "{title} fits the grid");
    }
    for subject in [
        "queue length",
        "oldest wait",
        "by type and outcome",
        "duration p50 / p95 / p99",
        "wait p50 / p95 / p99",
        "workers by state",
        "restarts by reason",
        "memory kills",
        "worker cpu",
        "worker rss",
        "worker gpu memory",
        "instances",
        "redis up",
    ] {
        assert!(titles.iter().any(|t| t.contains(subject)), "a panel on {subject}: {titles:?}");
    }
    // histogram_quantile over the buckets, never over the _sum or _count series.
    let exprs = dashboard.to_string();
    assert!(exprs.contains(
        "histogram_quantile(0.99, sum by (le, type) (rate(workerpool_task_duration_seconds_bucket"
    ));
    assert!(
        exprs
            .contains("histogram_quantile(0.99, sum by (le, type) (rate(workerpool_task_wait_seconds_bucket")
    );
}
