//! The kit's launchers against the real programs: each reports the port it bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyway_testkit::process::http_status;
use keyway_testkit::workerd::Worker;
use keyway_testkit::{Redis, Workerd, WorkerdConfig};

#[test]
fn workerd_reports_the_port_of_each_socket() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.js"),
        "export default { fetch() { return new Response('a', { status: 201 }); } };",
    )
    .unwrap();
    let config = WorkerdConfig::new()
        .worker(Worker::js("one", "a.js"))
        .worker(Worker::js("two", "a.js").binding("X", "y"));
    let w = Workerd::start(dir.path(), &config).unwrap();
    let (one, two) = (w.url("one").unwrap(), w.url("two").unwrap());
    assert_ne!(one, two);
    assert_eq!(http_status(&format!("{one}/")), Some(201));
    assert_eq!(http_status(&format!("{two}/")), Some(201));
}

#[test]
fn redis_starts_and_restarts_empty_on_its_port() {
    let mut r = Redis::start().unwrap();
    let port = r.port;
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    r.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    r.restart().unwrap();
    assert_eq!(r.port, port);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}
