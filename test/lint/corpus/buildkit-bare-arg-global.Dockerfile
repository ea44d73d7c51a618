# expect: none
# A bare ARG in a stage takes the global default: the user is 1000.
ARG UID=1000
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ARG UID
USER ${UID}:${UID}
