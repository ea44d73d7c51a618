# syntax=docker/dockerfile:1
# expect: RLP001
# cargo-chef: the dependency graph cooked in its own layer.
FROM lukemathwalker/cargo-chef:latest-rust-1.82 AS chef
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --bin app

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home app
WORKDIR /app
COPY --from=builder /app/target/release/app /usr/local/bin/app
USER 10001
ENTRYPOINT ["/usr/local/bin/app"]
