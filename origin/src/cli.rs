//! `keyway`: the origin's command line. It lives in the library so that every binary
//! that runs the origin (the `keyway` binary, the end-to-end tests' and the lab's) runs
//! exactly this code, and each can be built by cargo as an ordinary target.

use std::ffi::OsString;

use clap::{Parser, Subcommand};
use keyway_core::secret::Secret;
use tracing_subscriber::EnvFilter;

use crate::config::{EncryptionConfig, LogFormat, ServeConfig};
use crate::{ids, server, store::Store};

#[derive(Parser)]
#[command(
    name = "keyway",
    version,
    about = "Keyway: API-key verification, wire-compatible with Unkey v2"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the origin server.
    Serve(Box<ServeConfig>),
    /// Manage root keys.
    #[command(subcommand)]
    RootKeys(RootKeys),
    /// Copy a whole deployment to another database (SQLite or PostgreSQL, either way):
    /// every table, root keys, credits, rollups and events. The target must be empty
    /// unless --overwrite; the copy is checked table by table (rows and a checksum).
    /// Stop the servers first so that credits they hold in memory are written.
    Migrate {
        /// The database to copy: `sqlite://FILE` or `postgres://…`.
        #[arg(long, hide_env_values = true)]
        from: Secret,
        /// The database to fill (a SQLite file is created).
        #[arg(long, hide_env_values = true)]
        to: Secret,
        /// Replace whatever the target holds instead of refusing.
        #[arg(long)]
        overwrite: bool,
    },
    /// Recoverable keys' master keys.
    #[command(subcommand)]
    Encryption(Encryption),
    /// Exit 0 if the server on KEYWAY_LISTEN's port answers its liveness check.
    Healthcheck {
        #[arg(long, env = "KEYWAY_LISTEN", default_value = "0.0.0.0:8080")]
        listen: std::net::SocketAddr,
    },
}

#[derive(clap::Args)]
struct Database {
    #[arg(
        long = "database",
        env = "KEYWAY_DATABASE_URL",
        default_value = "sqlite://keyway.db",
        hide_env_values = true
    )]
    url: Secret,
}

impl Database {
    async fn open(&self) -> anyhow::Result<Store> {
        Store::connect(self.url.expose(), 2).await
    }
}

#[derive(Subcommand)]
enum RootKeys {
    /// Create a root key and print it (once).
    Create {
        /// A grant such as `api.*.verify_key`; repeat for more. Default: every permission.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        database: Database,
    },
    /// List live root keys: id, start, name, creation time and grants. Never the key.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: Database,
    },
    /// Revoke a root key by id. Running servers refuse it within their cache's fresh
    /// time (`KEYWAY_CACHE_FRESH_SECONDS`, 10 s by default); in cluster mode (with the
    /// servers' `KEYWAY_REDIS_URL`) at once.
    Revoke {
        id: String,
        #[command(flatten)]
        database: Database,
        /// The cluster's Redis: tell every running server to drop the key now.
        #[arg(long = "redis", env = "KEYWAY_REDIS_URL", hide_env_values = true)]
        redis: Option<Secret>,
        #[arg(long, env = "KEYWAY_REDIS_PREFIX", default_value = "keyway:")]
        redis_prefix: String,
    },
}

#[derive(Subcommand)]
enum Encryption {
    /// Re-seal every recoverable key under KEYWAY_ENCRYPTION_KEY, opening each with
    /// whichever configured key sealed it. Afterwards KEYWAY_ENCRYPTION_KEYS_OLD can go.
    /// Safe to run while servers run, and again after an interruption.
    Rotate {
        #[command(flatten)]
        database: Database,
        #[command(flatten)]
        encryption: EncryptionConfig,
    },
}

fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("KEYWAY_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

/// Parses `args` (the first is the program name, as in `std::env::args_os`) and runs the
/// command on a multi-threaded runtime.
pub fn run<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(execute(cli))
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => {
            init_logging(config.log_format);
            server::serve(*config).await
        }
        Command::RootKeys(RootKeys::Create {
            permissions,
            name,
            database,
        }) => {
            init_logging(LogFormat::Human);
            let store = database.open().await?;
            let now = ids::now_ms();
            let workspace = store.ensure_workspace(now).await?;
            let grants = if permissions.is_empty() {
                keyway_core::auth::all_root_permissions()
            } else {
                permissions
            };
            let minted = ids::mint_key(Some("root"), 24)?;
            store
                .insert_root_key(&workspace, minted.key.expose(), name, grants, now)
                .await?;
            println!("{}", minted.key.expose());
            store.close().await;
            Ok(())
        }
        Command::RootKeys(RootKeys::List { json, database }) => {
            init_logging(LogFormat::Human);
            let store = database.open().await?;
            let keys = store.list_root_keys().await?;
            store.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                for k in keys {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        k.id,
                        k.start,
                        k.name.as_deref().unwrap_or("-"),
                        rfc3339(k.created_at),
                        k.permissions.join(",")
                    );
                }
            }
            Ok(())
        }
        Command::RootKeys(RootKeys::Revoke {
            id,
            database,
            redis,
            redis_prefix,
        }) => {
            init_logging(LogFormat::Human);
            let store = database.open().await?;
            let revoked = store.revoke_root_key(&id, ids::now_ms()).await?;
            store.close().await;
            let Some(hash) = revoked else {
                anyhow::bail!("no live root key has the id {id}")
            };
            println!("revoked {id}");
            if let Some(url) = redis {
                let metrics = std::sync::Arc::new(crate::metrics::Metrics::new()?);
                let cluster =
                    crate::cluster::Cluster::connect(url.expose(), &redis_prefix, metrics).await?;
                if crate::caches::notices::announce(&cluster, &hash).await {
                    println!("every running server was told to drop it");
                } else {
                    anyhow::bail!(
                        "revoked, but redis did not take the notice: servers refuse the key within their fresh time"
                    );
                }
            }
            Ok(())
        }
        Command::Encryption(Encryption::Rotate {
            database,
            encryption,
        }) => {
            init_logging(LogFormat::Human);
            let Some(vault) = encryption.vault()? else {
                anyhow::bail!("set KEYWAY_ENCRYPTION_KEY (the new master key) to rotate to");
            };
            let store = database.open().await?;
            let done = crate::vault::rotate(&store, &vault).await;
            store.close().await;
            let done = done?;
            println!(
                "re-sealed {} keys under {}; {} were already; {} changed meanwhile and were left",
                done.resealed,
                vault.current_id(),
                done.already_current,
                done.skipped
            );
            Ok(())
        }
        Command::Migrate {
            from,
            to,
            overwrite,
        } => {
            init_logging(LogFormat::Human);
            migrate(&from, &to, overwrite).await
        }
        Command::Healthcheck { listen } => healthcheck(listen).await,
    }
}

async fn migrate(from: &Secret, to: &Secret, overwrite: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if from.expose() == to.expose() {
        anyhow::bail!("--from and --to are the same database");
    }
    let source = Store::connect(from.expose(), 2).await?;
    let target = Store::connect(to.expose(), 2).await?;
    let options = crate::transfer::Options {
        overwrite,
        progress: std::io::stderr().is_terminal(),
    };
    let copied = crate::transfer::copy(&source, &target, &options).await;
    source.close().await;
    target.close().await;
    let reports = copied?;
    println!("{:<32} {:>12} {:>18}  check", "table", "rows", "checksum");
    for r in &reports {
        let verdict = if r.matches() {
            "ok".to_string()
        } else {
            format!(
                "MISMATCH: target has {} rows, checksum {:016x}",
                r.target.rows, r.target.digest
            )
        };
        println!(
            "{:<32} {:>12} {:>18}  {verdict}",
            r.table,
            r.source.rows,
            format!("{:016x}", r.source.digest)
        );
    }
    let bad = reports.iter().filter(|r| !r.matches()).count();
    if bad > 0 {
        anyhow::bail!("{bad} tables differ after the copy");
    }
    let rows: u64 = reports.iter().map(|r| r.source.rows).sum();
    println!(
        "copied {rows} rows in {} tables; every table matches",
        reports.len()
    );
    Ok(())
}

/// Unix ms as an RFC 3339 time in UTC.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
}

/// A liveness probe with no curl in the image: a raw HTTP/1.1 GET over loopback.
async fn healthcheck(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), listen.port());
    let mut stream = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::TcpStream::connect(addr),
    )
    .await??;
    stream
        .write_all(b"GET /v2/liveness HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(3),
        stream.read_to_end(&mut buf),
    )
    .await??;
    if buf.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        anyhow::bail!("liveness check failed")
    }
}
