# expect: RLP013
# A single-stage image, exec form: still remote code into a shell.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
RUN ["/bin/sh", "-c", "curl -fsSL https://example.org/install.sh | bash -s -- --yes"]
USER 1000:1000
