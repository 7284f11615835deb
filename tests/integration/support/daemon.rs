//! A daemon process on a scratch folder, waiting for it, and a real HTTP server for
//! fake systems.

use axum::Router;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A daemon process and the address it listens on (shared with the ingest tests).
pub struct Daemon {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(dir: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_at(dir, env, None)
    }

    /// Starts the daemon with its clock at `at` (RFC 3339) when given, else at the
    /// run's instant ([`crate::test_instant`]).
    pub(crate) fn start_at(dir: &Path, env: &[(&str, &str)], at: Option<&str>) -> Daemon {
        static N: AtomicUsize = AtomicUsize::new(0);
        let log = dir.join(format!("daemon-{}.log", N.fetch_add(1, Ordering::SeqCst)));
        let mut cmd = match at {
            Some(at) => crate::slawatch_at(at),
            None => crate::slawatch(),
        };
        cmd.args(["--config", "slawatch.toml", "--log-format", "json", "run"])
            .current_dir(dir)
            .env("SLAWATCH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the daemon starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log_path = log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&log_path).unwrap();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                use std::io::Write;
                let _ = writeln!(file, "{line}");
                if !sent {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v["fields"]["message"] == "http listener" {
                            let _ =
                                tx.send(v["fields"]["listen"].as_str().unwrap_or("").to_string());
                            sent = true;
                        }
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the daemon reports its listener");
        Daemon { child, addr, log }
    }

    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("http://{}{path}", self.addr);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = reqwest::get(&url).await.unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        })
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub(crate) fn wait(mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!(
            "the daemon did not stop; log: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Pushes DVCQG records with the push token `tk`; the daemon must accept them.
    pub(crate) fn push(&self, records: &Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("http://{}/api/v1/ingest/dvcqg", self.addr))
                .bearer_auth("tk")
                .json(records)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        });
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A page's text (`/metrics`, or JSON as text).
    pub(crate) fn text(&self, path: &str) -> String {
        let url = format!("http://{}{path}", self.addr);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() })
    }

    pub(crate) fn ready(&self) -> Value {
        serde_json::from_str(&self.text("/readyz")).unwrap()
    }

    /// A sample of `/metrics` by its name and labels as written (`{source="p"}`).
    pub(crate) fn metric(&self, series: &str) -> f64 {
        self.text("/metrics")
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(f64::NAN)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// Serves `app` on 127.0.0.1 from a thread of its own (the tests are synchronous);
/// returns its base URL.
pub fn serve_app(app: Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap().to_string()).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}
