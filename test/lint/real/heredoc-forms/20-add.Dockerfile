# syntax=docker/dockerfile:1
# expect: none
# ADD <<EOF
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ADD <<EOF /etc/app.conf
listen 8080
EOF

USER 1000:1000
