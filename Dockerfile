# workerpool in a container (docs/DEPLOY.md "Container").
#   docker build --build-arg WORKERPOOL_REVISION="$(git rev-parse --short HEAD)" -t workerpool .
#   docker run --init -p 3002:3002 --stop-timeout 45 -e WORKERPOOL_API_TOKEN=… workerpool
# The image holds the server and its bundled demo worker (the same binary's `demo-worker`
# subcommand, which the default types run). Your own workers: build FROM this image and add
# their runtime (e.g. `apt-get install python3`) and a configuration naming their `command`.
# Needs BuildKit (docker 23 or later, or DOCKER_BUILDKIT=1 on 20.10) for `RUN --mount`. No
# `# syntax=` line on purpose: the built-in Dockerfile frontend handles the cache mounts, so a
# build pulls no frontend image and needs no registry beyond the two base images.

# ---- build ----
FROM rust:1.95-bookworm AS build
WORKDIR /src
# .git stays out of the context: the revision /metrics reports (workerpool_build_info) comes
# in as this argument, else it is "unknown".
ARG WORKERPOOL_REVISION=
COPY . .
# The cache mounts keep the registry and the build directory between builds; the binary is
# copied out of the cached target directory, which does not persist into the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin workerpool \
    && install -m 0755 target/release/workerpool /workerpool

# ---- run ----
FROM debian:bookworm-slim
# ca-certificates: rediss:// (Redis over TLS) against a public certificate authority.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 workerpool \
    && useradd --system --uid 10001 --gid workerpool --home-dir /var/lib/workerpool \
       --create-home --shell /usr/sbin/nologin workerpool
COPY --from=build /workerpool /usr/local/bin/workerpool
COPY config/default.toml /etc/workerpool/workerpool.toml
USER workerpool:workerpool
WORKDIR /var/lib/workerpool
# Listen on every interface inside the container; publish the port to choose who reaches it.
# WORKERPOOL_URL is where the binary's client (the HEALTHCHECK, `docker exec … workerpool
# status`) finds the server: set it with WORKERPOOL_BIND when the port changes.
ENV WORKERPOOL_BIND=0.0.0.0:3002 \
    WORKERPOOL_URL=http://127.0.0.1:3002 \
    RUST_LOG=info
EXPOSE 3002
# SIGTERM starts the graceful shutdown (graceful_shutdown_timeout_ms, 30 s by default): give the
# container more than that to stop (`docker stop -t 45`, compose `stop_grace_period: 45s`).
STOPSIGNAL SIGTERM
# The binary's own client, so the image needs no curl: exits 0 when the server at WORKERPOOL_URL
# answers /api/workers/status (it sends WORKERPOOL_API_TOKEN when set), non-zero when it does not.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/workerpool", "status", "--json"]
ENTRYPOINT ["/usr/local/bin/workerpool"]
CMD ["serve", "--config", "/etc/workerpool/workerpool.toml"]
