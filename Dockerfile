# telenode: multi-stage build, small runtime image, non-root.
#   docker build -t telenode .
# The runtime stage carries only what the binary links dynamically (libvpx,
# and libasound for the doctor client's sound devices, which the node never
# opens) and CA certificates; SQLite and libopus are linked in statically.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvpx-dev libopus-dev libasound2-dev pkg-config cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin telenode \
 && strip target/release/telenode

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvpx7 libasound2 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/telenode \
      --shell /usr/sbin/nologin telenode \
 && mkdir -p /var/lib/telenode/data /var/lib/telenode/keys \
 && chown -R telenode:telenode /var/lib/telenode \
 && chmod 0700 /var/lib/telenode
COPY --from=build /src/target/release/telenode /usr/local/bin/telenode
USER telenode
WORKDIR /var/lib/telenode
# Public HTTPS + WebSocket signalling and the TURN relay (UDP and TCP 3478;
# set TELENODE_TURN_RELAY_IP; TLS on 5349 with TELENODE_TURN_TLS_LISTEN and a
# certificate); the operations listener stays inside the
# container (loopback) and is used by the health check.
ENV TELENODE_LISTEN=0.0.0.0:8443 \
    TELENODE_ADMIN_LISTEN=127.0.0.1:9090 \
    TELENODE_DATA_DIR=/var/lib/telenode/data \
    TELENODE_MASTER_KEY_FILE=/var/lib/telenode/keys/master.key \
    TELENODE_TURN_LISTEN=0.0.0.0:3478
EXPOSE 8443/tcp 3478/udp 3478/tcp 5349/tcp
VOLUME ["/var/lib/telenode/data", "/var/lib/telenode/keys"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["telenode", "healthcheck", "--url", "http://127.0.0.1:9090/readyz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["telenode"]
CMD ["serve"]
