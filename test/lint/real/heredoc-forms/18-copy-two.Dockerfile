# syntax=docker/dockerfile:1
# expect: none
# two heredocs into one directory
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
COPY <<EOF1 <<EOF2 /etc/app/
first
EOF1
second
EOF2

USER 1000:1000
