# expect: none
# A near miss of RLP009: quoted and a variable, but what BuildKit makes of
# it is absolute.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ENV APP_HOME=/app
WORKDIR "${APP_HOME}"
USER 1000:1000
