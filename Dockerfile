# The Keyway origin as one small image: a static binary on an empty base.
#
# It cannot build Rust inside (no registry is reachable on the machines this project is
# developed on, so no `FROM rust`), and it does not need to: build the static binary first,
#
#     rustup target add x86_64-unknown-linux-musl   # once; Debian also needs musl-tools
#     cargo build --release -p keyway-origin --bin keyway --target x86_64-unknown-linux-musl
#
# then `podman build -t keyway .` or `docker build -t keyway .`, the same either way.
FROM scratch

COPY target/x86_64-unknown-linux-musl/release/keyway /keyway
# An empty directory owned by the unprivileged user, for the SQLite database.
COPY --chown=10001:10001 docker/data /data

USER 10001:10001
# Metrics on their own port, so publishing 8080 does not publish them; publish 9090 only
# to the network your Prometheus scrapes from.
ENV KEYWAY_LISTEN=0.0.0.0:8080 \
    KEYWAY_METRICS_LISTEN=0.0.0.0:9090 \
    KEYWAY_DATABASE_URL=sqlite:///data/keyway.db \
    KEYWAY_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080 9090

# The binary checks itself: there is no shell or curl in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/keyway", "healthcheck"]

# Docker's default stop signal; the server flushes credits and events on it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/keyway"]
CMD ["serve"]
