//! A TCP proxy that adds a one-way delay in each direction: the modelled network.
//!
//! Each chunk read from one side is written to the other side `delay` after it arrived,
//! not after the previous chunk was written, so a delay is a propagation time and never
//! a bandwidth cap: pipelined requests overlap as they would on a long link. tokio's
//! timer has a 1 ms resolution, so a delay of d is served as d to d + 1 ms.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub struct DelayProxy {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on an ephemeral loopback port and forwards every connection to `target`.
pub async fn start(target: SocketAddr, one_way: Duration) -> Result<DelayProxy> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the delay proxy")?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(target).await {
                    splice(client, server, one_way).await;
                }
            });
        }
    });
    Ok(DelayProxy { addr, task })
}

async fn splice(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_rx, client_tx) = client.into_split();
    let (server_rx, server_tx) = server.into_split();
    let up = tokio::spawn(pipe(client_rx, server_tx, delay));
    let down = tokio::spawn(pipe(server_rx, client_tx, delay));
    let _ = tokio::join!(up, down);
}

/// One direction. The reader stamps each chunk with its due time; the writer waits for it.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server for one connection; returns its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn adds_the_delay_each_way_and_keeps_bytes_intact() {
        let proxy = start(echo().await, Duration::from_millis(30))
            .await
            .unwrap();
        let mut c = TcpStream::connect(proxy.addr).await.unwrap();
        // Let the proxy's own connect finish so it is not counted.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = std::time::Instant::now();
        c.write_all(b"hello through a long wire").await.unwrap();
        let mut got = vec![0u8; 25];
        c.read_exact(&mut got).await.unwrap();
        let rtt = t0.elapsed();
        assert_eq!(&got, b"hello through a long wire");
        assert!(rtt >= Duration::from_millis(60), "round trip took {rtt:?}");
        assert!(rtt < Duration::from_millis(500), "round trip took {rtt:?}");
    }

    #[tokio::test]
    async fn pipelined_chunks_overlap_instead_of_queueing() {
        let proxy = start(echo().await, Duration::from_millis(40))
            .await
            .unwrap();
        let mut c = TcpStream::connect(proxy.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = std::time::Instant::now();
        for _ in 0..10 {
            c.write_all(b"x").await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut got = vec![0u8; 10];
        c.read_exact(&mut got).await.unwrap();
        // Ten writes 2 ms apart through an 80 ms round trip: about 100 ms, not 800.
        assert!(
            t0.elapsed() < Duration::from_millis(400),
            "{:?}",
            t0.elapsed()
        );
    }
}
