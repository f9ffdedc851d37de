//! Change notices: a write that drops cached snapshots tells every other node to drop
//! them too, through one Redis pub/sub channel.
//!
//! A notice is the dropped hashes (key snapshots, or a namespace's overrides), one per line, or `*` for "drop everything". A node
//! subscribes at start; when its subscription breaks it may have missed notices, so on
//! every resubscription it drops its whole cache. A notice that cannot be published is
//! kept and retried in order by a background task; if too many wait, they collapse into
//! one `*`. The cache's fresh time bounds staleness in any case.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::caches::overrides::OverrideCache;
use crate::caches::snapshots::SnapshotCache;
use crate::cluster::Cluster;

/// Notices kept for retry while Redis is unreachable before they become one `*`.
const BACKLOG: usize = 10_000;

pub struct Notices {
    cluster: Arc<Cluster>,
    channel: String,
    retry: mpsc::Sender<String>,
}

impl Notices {
    /// Starts the subscriber (which drops entries from `cache` as notices arrive) and the
    /// retry task.
    pub fn start(
        cluster: Arc<Cluster>,
        cache: Arc<SnapshotCache>,
        overrides: Arc<OverrideCache>,
    ) -> Arc<Notices> {
        let channel = cluster.key(&["notices"]);
        let (retry, backlog) = mpsc::channel(BACKLOG);
        tokio::spawn(subscribe(
            Arc::clone(&cluster),
            channel.clone(),
            cache,
            overrides,
        ));
        tokio::spawn(retry_failed(Arc::clone(&cluster), channel.clone(), backlog));
        Arc::new(Notices {
            cluster,
            channel,
            retry,
        })
    }

    /// Tells every node to drop these hashes. Waits for Redis to take the notice, so when
    /// a write answers, the other nodes have been told; if Redis does not take it, the
    /// notice is queued for retry and the write still succeeds.
    pub async fn publish<'a>(&self, hashes: impl IntoIterator<Item = &'a str>) {
        let message = hashes.into_iter().collect::<Vec<_>>().join("\n");
        if message.is_empty() {
            return;
        }
        if publish(&self.cluster, &self.channel, &message).await {
            return;
        }
        if self.retry.try_send(message).is_err() {
            // The backlog is full: whatever is in it, "drop everything" covers it.
            let _ = self.retry.try_send("*".into());
        }
    }
}

/// Sends one notice from outside a server (`keyway root-keys revoke`); whether Redis took it.
pub async fn announce(cluster: &Cluster, hash: &str) -> bool {
    publish(cluster, &cluster.key(&["notices"]), hash).await
}

async fn publish(cluster: &Cluster, channel: &str, message: &str) -> bool {
    let result: Result<i64, _> = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(message)
        .query_async(&mut cluster.conn())
        .await;
    match cluster.observe("publish", result.map_err(Into::into)) {
        Ok(_) => {
            cluster.metrics.notice("sent");
            true
        }
        Err(_) => false,
    }
}

async fn retry_failed(cluster: Arc<Cluster>, channel: String, mut backlog: mpsc::Receiver<String>) {
    while let Some(message) = backlog.recv().await {
        let mut wait = Duration::from_millis(50);
        while !publish(&cluster, &channel, &message).await {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }
}

async fn subscribe(
    cluster: Arc<Cluster>,
    channel: String,
    cache: Arc<SnapshotCache>,
    overrides: Arc<OverrideCache>,
) {
    let mut first = true;
    loop {
        match cluster.client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(e) = pubsub.subscribe(&channel).await {
                    let _ = cluster.observe::<()>("subscribe", Err(e.into()));
                } else {
                    if !first {
                        // Notices sent while we were away are lost: start over.
                        cache.invalidate_all();
                        overrides.invalidate_all();
                        cluster.metrics.notice("resync");
                        tracing::info!("change notices resumed; dropped the snapshot cache");
                    }
                    first = false;
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let text = String::from_utf8_lossy(msg.get_payload_bytes());
                        cluster.metrics.notice("received");
                        if text == "*" {
                            cache.invalidate_all();
                            overrides.invalidate_all();
                        } else {
                            cache.invalidate(text.lines());
                            overrides.invalidate(text.lines());
                        }
                    }
                    let _ = cluster.observe::<()>(
                        "subscribe",
                        Err(crate::cluster::ClusterError::Reply(
                            "notice channel closed".into(),
                        )),
                    );
                }
            }
            Err(e) => {
                let _ = cluster.observe::<()>("subscribe", Err(e.into()));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
