# escape=`
# expect: RLP005
# The escape directive applies to ENV word splitting too: with ` as the
# escape, the backslash is a plain character and API_TOKEN is its own word.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ENV INSTALL_DIR=C:\ API_TOKEN=abc123
USER 1000:1000
