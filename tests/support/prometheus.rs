//! What the deployment checks share: reading the dashboard's queries and the alert rules out
//! of `deploy/`, the metric names a query or a scrape holds, and a real Prometheus server on
//! loopback.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::redis_server::missing_tool;
use super::server::agent;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Whether `program` can be run; a skip (false) on a developer machine without it, and a
/// failure under `CI=true`.
pub fn installed(program: &str) -> bool {
    if Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
        return true;
    }
    missing_tool(&format!("{program} is not installed; scripts/test.sh installs it"));
    false
}

/// Every query of the dashboard (panels and template variables), with its panel's title.
pub fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/workerpool.json")).expect("valid JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a query").to_string();
            out.push((panel["title"].as_str().unwrap_or_default().to_string(), expr));
        }
    }
    for var in dashboard["templating"]["list"].as_array().expect("variables") {
        if let Some(q) = var["definition"].as_str() {
            out.push((format!("variable {}", var["name"]), q.to_string()));
        }
    }
    out
}

/// Every rule's `expr` in alerts.yml, with its alert's name: one-line values and `|` blocks
/// (the two forms the file uses).
pub fn alert_exprs() -> Vec<(String, String)> {
    let file = read("deploy/prometheus/alerts.yml");
    let lines: Vec<&str> = file.lines().collect();
    let (mut out, mut alert) = (Vec::new(), String::new());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            alert = name.to_string();
        } else if let Some(value) = line.trim().strip_prefix("expr:") {
            let value = value.trim();
            if value == "|" || value == ">" || value == "|-" || value == ">-" {
                let mut block = Vec::new();
                while let Some(next) = lines.get(i + 1) {
                    let deeper = next.len() - next.trim_start().len() > indent;
                    if !(deeper || next.trim().is_empty()) {
                        break;
                    }
                    block.push(next.trim());
                    i += 1;
                }
                out.push((alert.clone(), block.join(" ").trim().to_string()));
            } else {
                out.push((alert.clone(), value.trim_matches(|c| c == '"' || c == '\'').to_string()));
            }
        }
        i += 1;
    }
    out
}

/// The metric names a query uses: the `workerpool_*` and `process_*` identifiers outside
/// quoted strings.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let (mut quoted, mut word) = (false, String::new());
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            quoted = !quoted;
        }
        if !quoted && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if word.starts_with("workerpool_") || word.starts_with("process_") {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
    }
    names
}

/// A histogram's or summary's family name for its `_bucket`, `_sum` and `_count` series.
pub fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name)
}

/// The sample names and the `# TYPE` families of an exposition.
pub fn exposed(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            names.extend(rest.split_whitespace().next().map(str::to_string));
        } else if !line.starts_with('#') && !line.is_empty() {
            names.extend(line.split(['{', ' ']).next().map(str::to_string));
        }
    }
    names
}

/// A Prometheus server on a free loopback port, with its own storage directory; stopped and
/// its directory removed when dropped.
pub struct Prometheus {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus on `deploy/prometheus/prometheus.yml`, pointed at `target` with 1 s
    /// scrape and rule intervals and the rule file by its absolute path.
    pub fn start(target: &str) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("wp-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).expect("the Prometheus directory");
        let example = read("deploy/prometheus/prometheus.yml");
        let rules = root().join("deploy/prometheus/alerts.yml");
        let mut config = example.clone();
        for (from, to) in [
            ("- 127.0.0.1:3002", format!("- {target}")),
            ("- alerts.yml", format!("- {}", rules.display())),
            ("scrape_interval: 15s", "scrape_interval: 1s".to_string()),
            ("evaluation_interval: 15s", "evaluation_interval: 1s".to_string()),
        ] {
            assert!(config.contains(from), "prometheus.yml has {from:?}");
            config = config.replace(from, &to);
        }
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).expect("write the Prometheus config");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("the Prometheus log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let prometheus = Prometheus { child, base: format!("http://127.0.0.1:{port}"), dir };
        let ready = super::server::wait_for(Duration::from_secs(30), || {
            agent().get(&format!("{}/-/ready", prometheus.base)).call().is_ok_and(|r| r.status() == 200)
        });
        assert!(ready, "Prometheus did not get ready: {}", prometheus.log());
        prometheus
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/{path}` with query parameters; the answer's JSON.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut req = agent().get(&format!("{}/api/v1/{path}", self.base));
        for (k, v) in params {
            req = req.query(*k, *v);
        }
        let mut res = req.call().expect("Prometheus answers");
        let text = res.body_mut().read_to_string().expect("a body");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON from /api/v1/{path}: {text}"))
    }

    /// An instant query's answer.
    pub fn query(&self, expr: &str) -> Value {
        self.api("query", &[("query", expr)])
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A dashboard query with Grafana's variables replaced by concrete values.
pub fn concrete(expr: &str, instance: &str, types: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$instance", &instance.replace('.', "\\\\."))
        .replace("$type", types)
}
