//! A real Prometheus server scraping daemons with the shipped rules, and its query API.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A Prometheus process, killed when dropped.
pub struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping `targets` (host:port) as job `slawatch`
    /// every second, with `deploy/prometheus/slawatch.rules.yml` evaluated every second.
    pub fn start(dir: &Path, targets: &[&str]) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let rules = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/slawatch.rules.yml"),
        )
        .unwrap()
        .replace("interval: 1m", "interval: 1s");
        std::fs::write(dir.join("slawatch.rules.yml"), rules).unwrap();
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - slawatch.rules.yml\n\
                 scrape_configs:\n  - job_name: slawatch\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .args([
                "--config.file=prometheus.yml",
                "--storage.tsdb.path=tsdb",
                &format!("--web.listen-address=127.0.0.1:{port}"),
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus starts");
        Prometheus { child, port }
    }

    /// The result vector of an instant query (empty while Prometheus is not up yet).
    pub fn query(&self, q: &str) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let r = reqwest::Client::new()
                    .get(url)
                    .query(&[("query", q)])
                    .send()
                    .await
                    .ok()?;
                let v: Value = r.json().await.ok()?;
                v["data"]["result"].as_array().cloned()
            })
            .unwrap_or_default()
    }

    /// The first sample's value of an instant query.
    pub fn scalar(&self, q: &str) -> Option<f64> {
        self.query(q)
            .first()
            .and_then(|s| s["value"][1].as_str().and_then(|v| v.parse().ok()))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
