//! Writes a [`Report`](super::tthc::Report): CSV, JSON, HTML, XLSX.
