# syntax=docker/dockerfile:1
# expect: none
# RUN <<EOF: the body is the script
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
RUN <<EOF
set -e
mkdir -p /opt/app
EOF

USER 1000:1000
