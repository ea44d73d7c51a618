# syntax=docker/dockerfile:1
# expect: none
# mounts on continued lines, then the heredoc
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
RUN --mount=type=cache,target=/var/cache/apk \
    --mount=type=tmpfs,target=/tmp \
    <<EOT
set -e
mkdir -p /opt/app
EOT

USER 1000:1000
