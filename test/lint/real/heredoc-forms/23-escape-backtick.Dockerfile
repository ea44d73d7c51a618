# escape=`
# expect: none
# the backtick escape
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
RUN apk add --no-cache `
    tzdata=2024b-r1
RUN <<EOF
mkdir -p /opt/app
EOF
USER 1000:1000
