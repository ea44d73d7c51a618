# syntax=docker/dockerfile:1
# expect: RLP001
# The user is created with the UID of ARG UID, which the RUN's shell expands.
# A static Rust binary built with cache mounts and heredoc scripts (docker init's Rust template).
ARG RUST_VERSION=1.82
FROM rust:${RUST_VERSION}-alpine AS build
RUN apk add --no-cache musl-dev=1.2.5-r0
WORKDIR /src
RUN --mount=type=bind,source=src,target=src \
    --mount=type=bind,source=Cargo.toml,target=Cargo.toml \
    --mount=type=bind,source=Cargo.lock,target=Cargo.lock \
    --mount=type=cache,target=/src/target/ \
    --mount=type=cache,target=/usr/local/cargo/git/db \
    --mount=type=cache,target=/usr/local/cargo/registry/ <<EOF
set -e
cargo build --locked --release
cp ./target/release/server /bin/server
EOF
FROM alpine:3.20 AS final
ARG UID=10001
RUN adduser \
    --disabled-password \
    --gecos "" \
    --home "/nonexistent" \
    --shell "/sbin/nologin" \
    --no-create-home \
    --uid "${UID}" \
    appuser
USER appuser
COPY --from=build /bin/server /bin/
EXPOSE 8000
CMD ["/bin/server"]
