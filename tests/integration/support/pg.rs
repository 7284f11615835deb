//! A fresh PostgreSQL database per test, when `SLAWATCH_TEST_DATABASE_URL` is set.

use chrono::Utc;
use sqlx::Connection;

/// A fresh PostgreSQL database for one test, dropped when done.
pub struct PgDatabase {
    admin: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(tag: &str) -> Option<PgDatabase> {
        let admin = std::env::var("SLAWATCH_TEST_DATABASE_URL").ok()?;
        let name = format!(
            "slawatch_{tag}_{}_{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or(0) % 1_000_000_000
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Some(PgDatabase {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    pub async fn drop_it(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }
}
