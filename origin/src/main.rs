//! `keyway`: the origin's command line. Parses arguments and calls into the library.

use clap::{Parser, Subcommand};
use keyway_origin::config::{LogFormat, ServeConfig};
use keyway_origin::{ids, server, store::Store};
use tracing_subscriber::EnvFilter;

// The hot path allocates small, short-lived objects across two worker threads; glibc's
// malloc spent about 13% of a loaded server's CPU on them (perf), mimalloc much less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Serve(ServeConfig),
    /// Manage root keys.
    #[command(subcommand)]
    RootKeys(RootKeys),
    /// Exit 0 if the server on KEYWAY_LISTEN's port answers its liveness check.
    Healthcheck {
        #[arg(long, env = "KEYWAY_LISTEN", default_value = "0.0.0.0:8080")]
        listen: std::net::SocketAddr,
    },
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
        #[arg(
            long = "database",
            env = "KEYWAY_DATABASE_URL",
            default_value = "sqlite://keyway.db"
        )]
        database_url: String,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            init_logging(config.log_format);
            server::serve(config).await
        }
        Command::RootKeys(RootKeys::Create {
            permissions,
            name,
            database_url,
        }) => {
            init_logging(LogFormat::Human);
            let store = Store::connect(&database_url, 2).await?;
            let now = ids::now_ms();
            let workspace = store.ensure_workspace(now).await?;
            let grants = if permissions.is_empty() {
                keyway_core::auth::ALL_ROOT_PERMISSIONS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
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
        Command::Healthcheck { listen } => healthcheck(listen).await,
    }
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
