# expect: none
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
# ralph-lint ignore=RLP004: a test of an exception in force
USER root
