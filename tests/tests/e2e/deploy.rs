//! The deployment story, as a user lives it: the origin as one container, the edge
//! through wrangler, traffic switched between them, and a restart that loses nothing.
//!
//! It needs podman (Debian's package; no Docker engine runs here) and a static musl build
//! of the origin. If podman is missing the test fails and says how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use keyway_tests::{Client, Edge, random_hex, workspace_root};
use serde_json::json;

const IMAGE: &str = "localhost/keyway:e2e";

fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman").args(args).output().unwrap_or_else(|e| {
        panic!("podman is not available ({e}). Install it: apt-get install -y podman runc, then set runtime = runc in /etc/containers/containers.conf (see .ci/run)")
    })
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn build_image() {
    let root = workspace_root();
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "keyway-origin",
            "--bin",
            "keyway",
            "--target",
            "x86_64-unknown-linux-musl",
        ])
        .current_dir(&root)
        .status()
        .expect("cargo build for musl");
    assert!(
        status.success(),
        "the static build failed: it needs `rustup target add x86_64-unknown-linux-musl` and Debian's musl-tools"
    );
    let out = Command::new("podman")
        .args(["build", "--format", "docker", "-t", IMAGE, "."])
        .current_dir(&root)
        .output()
        .expect("podman build");
    ok(&out, "podman build");
}

struct Container {
    name: String,
    url: String,
    metrics_url: String,
}

impl Container {
    fn run(volume: &std::path::Path, root_key: &str, secret: &str) -> Container {
        let name = format!("keyway-e2e-{}", random_hex());
        let out = podman(&[
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            "127.0.0.1::8080",
            "-p",
            "127.0.0.1::9090",
            "-v",
            &format!("{}:/data", volume.display()),
            "-e",
            &format!("KEYWAY_ROOT_KEY={root_key}"),
            "-e",
            &format!("KEYWAY_EDGE_SECRET={secret}"),
            "-e",
            "KEYWAY_EVENT_FLUSH_MS=60000",
            IMAGE,
        ]);
        ok(&out, "podman run");
        // The host ports are podman's choice; it says which.
        let host_port = |port: &str| {
            let addr = ok(&podman(&["port", &name, port]), "podman port");
            addr.lines().next().unwrap_or_default().to_string()
        };
        let url = format!("http://{}", host_port("8080"));
        let metrics_url = format!("http://{}", host_port("9090"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while keyway_tests::http_status(&format!("{url}/v2/liveness")) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "the container never answered: {}",
                String::from_utf8_lossy(&podman(&["logs", &name]).stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Container {
            name,
            url,
            metrics_url,
        }
    }

    /// `podman stop` sends SIGTERM and waits up to 10 s, as Docker does.
    fn stop(&self) -> (Duration, String) {
        let started = Instant::now();
        ok(&podman(&["stop", "-t", "10", &self.name]), "podman stop");
        let took = started.elapsed();
        let code = ok(
            &podman(&["inspect", &self.name, "--format", "{{.State.ExitCode}}"]),
            "podman inspect",
        );
        (took, code)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", &self.name]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_story() {
    build_image();
    let size = ok(
        &podman(&["image", "inspect", IMAGE, "--format", "{{.Size}}"]),
        "podman image inspect",
    );
    assert!(
        size.parse::<u64>().unwrap() < 25 * 1024 * 1024,
        "image is {size} bytes"
    );

    // 1. One container, a volume, a mapped port, a root key from the environment.
    let volume = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        volume.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let root_key = format!("root_{}", random_hex());
    let secret = format!("edge_{}", random_hex());
    let first = Container::run(volume.path(), &root_key, &secret);
    ok(
        &podman(&["healthcheck", "run", &first.name]),
        "the image's HEALTHCHECK",
    );
    // Metrics on their own port; the API port does not serve them.
    assert_eq!(
        keyway_tests::http_status(&format!("{}/metrics", first.metrics_url)),
        Some(200)
    );
    assert_eq!(
        keyway_tests::http_status(&format!("{}/metrics", first.url)),
        Some(404)
    );

    // 2. An API and keys through the container's HTTP API.
    // Unpooled: the second container may be given the first one's host port.
    let c = Client::unpooled(&first.url, &root_key);
    let api = c.at(&first.url).create_api().await;
    let (_, plain) = c.at(&first.url).create_key_in(&api, json!({})).await;
    let (metered_id, metered) = c
        .at(&first.url)
        .create_key_in(&api, json!({"credits": {"remaining": 10}}))
        .await;
    let mut split_keys = Vec::new();
    for _ in 0..12 {
        split_keys.push(c.at(&first.url).create_key_in(&api, json!({})).await.1);
    }

    // 3. The edge in workerd, pointed at the container.
    let edge = Edge::start_for(&first.url, &secret, 10.0, 600.0);
    let e = edge.url.as_str();

    // 4. Every mode, switched through KV.
    let r = c.at(e).verify_reply(json!({"key": plain})).await;
    assert_eq!(
        (r.served_by.as_deref(), r.body["data"]["code"].as_str()),
        (Some("edge"), Some("VALID"))
    );
    for _ in 0..3 {
        let r = c.at(e).verify_reply(json!({"key": metered})).await;
        assert_eq!(
            (r.served_by.as_deref(), r.body["data"]["code"].as_str()),
            (Some("origin"), Some("VALID"))
        );
    }
    for (mode, check) in [
        ("origin", "origin"),
        ("split:50", "split"),
        ("shadow", "origin"),
        ("edge", "edge"),
    ] {
        edge.set_route(mode);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        if check == "split" {
            let mut seen = std::collections::HashSet::new();
            for k in &split_keys {
                seen.insert(
                    c.at(e)
                        .verify_reply(json!({"key": k}))
                        .await
                        .served_by
                        .unwrap(),
                );
            }
            assert_eq!(
                seen.len(),
                2,
                "split:50 sends some keys to each model: {seen:?}"
            );
        } else {
            let r = c.at(e).verify_reply(json!({"key": plain})).await;
            assert_eq!(r.served_by.as_deref(), Some(check), "mode {mode}");
            assert_eq!(r.body["data"]["code"], "VALID");
        }
    }

    // 5. SIGTERM with events still buffered (their flush interval is a minute), then a
    //    new container on the same volume.
    let (took, code) = first.stop();
    assert_eq!(code, "0", "graceful exit");
    assert!(
        took < Duration::from_secs(10),
        "stopped in {took:?}, inside Docker's grace period"
    );
    let second = Container::run(volume.path(), &root_key, &secret);
    let r = c.at(&second.url).verify_reply(json!({"key": plain})).await;
    assert_eq!(r.body["data"]["code"], "VALID", "keys survived");
    let r = c
        .at(&second.url)
        .post("/v2/keys.getKey", json!({"keyId": metered_id}))
        .await;
    assert_eq!(
        r.body["data"]["credits"]["remaining"], 7,
        "credits survived"
    );
    second.stop();
    let db = format!(
        "sqlite://{}?mode=ro",
        volume.path().join("keyway.db").display()
    );
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM key_verifications")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(events >= 5, "events survived: {events}");
    eprintln!("image {size} bytes; SIGTERM to exit {took:?}");
}
