//! A real SMTP server (aiosmtpd) storing what it receives.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// aiosmtpd (PyPI or Debian's python3-aiosmtpd) on a free port, storing to a maildir.
pub struct SmtpSink {
    child: Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl SmtpSink {
    pub fn start(dir: &Path, port: Option<u16>) -> Option<SmtpSink> {
        SmtpSink::start_with(dir, port, &[])
    }

    /// With the options of `smtp_sink.py` (holding replies, TLS, AUTH).
    pub fn start_with(dir: &Path, port: Option<u16>, extra: &[&str]) -> Option<SmtpSink> {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let maildir = dir.join("maildir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/smtp_sink.py");
        let child = Command::new("python3")
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--maildir",
                maildir.to_str().unwrap(),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut sink = SmtpSink {
            child,
            port,
            maildir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(sink);
            }
            if let Ok(Some(_)) = sink.child.try_wait() {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = sink.child.kill();
        None
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(d) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in d.filter_map(Result::ok) {
                    out.push(std::fs::read(e.path()).unwrap());
                }
            }
        }
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
