//! A database for one test: a SQLite file in a temp dir, or a PostgreSQL database on the
//! machine's server that is created here and dropped with the handle.

use anyhow::{Context, Result};
use sqlx::AnyPool;

use crate::random_hex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The machine's PostgreSQL: 127.0.0.1:5432, user postgres, trust auth (CI starts it).
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Result<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().context("tempdir")?;
                let url = format!("sqlite://{}", dir.path().join("keyway.db").display());
                Ok(TestDb {
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let name = format!("keyway_test_{}", random_hex());
                let admin = AnyPool::connect(&format!("{PG_SERVER}/postgres"))
                    .await
                    .context(
                        "PostgreSQL must run on 127.0.0.1:5432 with trust auth for user postgres (start it with pg_ctlcluster)",
                    )?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin)
                    .await
                    .context("create database")?;
                admin.close().await;
                Ok(TestDb {
                    url: format!("{PG_SERVER}/{name}"),
                    pg_name: Some(name),
                    _dir: None,
                })
            }
        }
    }

    pub async fn pool(&self) -> Result<AnyPool> {
        sqlx::any::install_default_drivers();
        AnyPool::connect(&self.url)
            .await
            .context("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop may run inside a runtime that must not block; use a private one on a
            // thread of its own.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(admin) = AnyPool::connect(&format!("{PG_SERVER}/postgres")).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&admin)
                                .await;
                        // The origin made an analytics role for this database; roles are
                        // the server's, not the database's, so they outlive it otherwise.
                        let role: Result<String, _> = sqlx::query_scalar(&format!(
                            "SELECT 'keyway_analytics_' || left(md5('{name}'), 12)"
                        ))
                        .fetch_one(&admin)
                        .await;
                        if let Ok(role) = role {
                            let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
                                .execute(&admin)
                                .await;
                        }
                        admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}
