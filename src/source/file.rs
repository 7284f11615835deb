//! The `file` source: a folder where other systems drop exports — JSON (an array, a
//! DVCQG envelope `{"data": […]}` or one record), NDJSON (`.ndjson`, `.jsonl`: one
//! record a line) or CSV (a header row naming the fields). A file is read once: its
//! path and content hash are remembered with the records it held, in the same
//! transaction, so a restart never reads it twice and a changed file is read again.
//! slawatch never deletes or moves a file.

use super::{Poll, PollContext, RawRecord, Source, SourceConfig, SourceError};
use async_trait::async_trait;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Largest file read (bigger ones are reported, not read).
const MAX_FILE: u64 = 512 * 1024 * 1024;

pub struct FileSource {
    dir: PathBuf,
}

impl FileSource {
    pub fn new(cfg: &SourceConfig) -> Result<FileSource, String> {
        let dir = cfg
            .dir
            .clone()
            .ok_or("`dir` is required for a file source")?;
        Ok(FileSource { dir })
    }
}

/// Splits one file into records.
pub fn parse_file(name: &str, text: &str) -> Vec<RawRecord> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") {
        return text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| match serde_json::from_str::<Value>(l) {
                Ok(v) => RawRecord::json(v, format!("{name}:{}", i + 1)),
                Err(e) => {
                    RawRecord::unparsable(l, format!("not JSON: {e}"), format!("{name}:{}", i + 1))
                }
            })
            .collect();
    }
    if lower.ends_with(".csv") {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers = match reader.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                return vec![RawRecord::unparsable(
                    text.chars().take(2000).collect::<String>(),
                    format!("CSV header: {e}"),
                    name,
                )]
            }
        };
        return reader
            .records()
            .map(|r| {
                let line = r
                    .as_ref()
                    .ok()
                    .and_then(|r| r.position())
                    .map(|p| p.line())
                    .unwrap_or(0);
                let origin = format!("{name}:{line}");
                match r {
                    Ok(rec) if rec.len() == headers.len() => {
                        let obj: Map<String, Value> = headers
                            .iter()
                            .zip(rec.iter())
                            .map(|(h, v)| (h.trim().to_string(), Value::String(v.to_string())))
                            .collect();
                        RawRecord::json(Value::Object(obj), origin)
                    }
                    Ok(rec) => RawRecord::unparsable(
                        rec.iter().collect::<Vec<_>>().join(","),
                        format!(
                            "{} fields where the header has {}",
                            rec.len(),
                            headers.len()
                        ),
                        origin,
                    ),
                    Err(e) => RawRecord::unparsable("", format!("CSV: {e}"), origin),
                }
            })
            .collect();
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| RawRecord::json(v, format!("{name}[{i}]")))
            .collect(),
        Ok(Value::Object(mut o)) if matches!(o.get("data"), Some(Value::Array(_))) => {
            let Some(Value::Array(items)) = o.remove("data") else {
                unreachable!()
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| RawRecord::json(v, format!("{name}/data[{i}]")))
                .collect()
        }
        Ok(v) => vec![RawRecord::json(v, name)],
        Err(e) => vec![RawRecord::unparsable(
            text.chars().take(100_000).collect::<String>(),
            format!("not JSON: {e}"),
            name,
        )],
    }
}

#[async_trait]
impl Source for FileSource {
    async fn poll(
        &self,
        _cursor: Option<&str>,
        ctx: &PollContext<'_>,
    ) -> Result<Poll, SourceError> {
        let mut entries: Vec<PathBuf> = Vec::new();
        let mut rd = tokio::fs::read_dir(&self.dir).await?;
        while let Some(e) = rd.next_entry().await? {
            let path = e.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            let wanted = [".json", ".ndjson", ".jsonl", ".csv"]
                .iter()
                .any(|x| name.ends_with(x));
            if wanted && e.file_type().await?.is_file() && !name.starts_with('.') {
                entries.push(path);
            }
        }
        entries.sort();
        let mut poll = Poll::default();
        for path in entries {
            let meta = tokio::fs::metadata(&path).await?;
            let shown = path.display().to_string();
            if meta.len() > MAX_FILE {
                tracing::warn!(source = ctx.source, file = %shown, size = meta.len(), "file too large, not read");
                continue;
            }
            let bytes = tokio::fs::read(&path).await?;
            let sha: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if ctx.ledger.file_seen(ctx.source, &shown, &sha).await? {
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("?")
                .to_string();
            match String::from_utf8(bytes) {
                Ok(text) => poll
                    .records
                    .extend(parse_file(&name, text.trim_start_matches('\u{feff}'))),
                Err(_) => {
                    poll.records
                        .push(RawRecord::unparsable("", "the file is not UTF-8", name))
                }
            }
            poll.files.push((shown, sha));
        }
        Ok(poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_every_format() {
        let r = parse_file("a.json", r#"[{"MaHoSo":"1"},{"MaHoSo":"2"}]"#);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].origin, "a.json[1]");
        let r = parse_file(
            "b.json",
            r#"{"service":"DongBoHoSoMC","data":[{"MaHoSo":"1"}]}"#,
        );
        assert_eq!(r[0].origin, "b.json/data[0]");
        let r = parse_file("c.ndjson", "{\"a\":1}\n\nnot json\n{\"a\":2}\n");
        assert_eq!(r.len(), 3);
        assert!(r[1].value.is_err());
        assert_eq!(r[1].origin, "c.ndjson:3");
        let r = parse_file(
            "d.csv",
            "case_id,status,received_at\nA,4,2024-03-01 08:00\nB,4\n",
        );
        assert_eq!(r[0].value.as_ref().unwrap()["case_id"], "A");
        assert!(r[1].value.is_err());
        let r = parse_file("e.json", "{\"truncated\": [1, 2");
        assert!(r[0].value.is_err());
    }
}
