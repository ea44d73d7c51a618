# expect: RLP004
# BuildKit runs a parent stage's ONBUILD triggers in the child: the final
# stage runs as root although the stage it is built on ends with USER 1000.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS base
RUN adduser -D -u 1000 app
ONBUILD USER root
USER 1000:1000
FROM base
RUN true
