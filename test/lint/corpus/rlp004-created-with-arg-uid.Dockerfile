# expect: none
# The near miss of docker init's template: the UID comes from an ARG that
# the RUN's shell expands.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ARG UID=10001
RUN adduser -D -u "${UID}" appuser
USER appuser
