# oracle: skip=a remote ADD needs the network
# expect: RLP006
# ADD sources are ARG-expanded before dispatch: ${URL} is a URL.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ARG URL=https://example.org/tool.tar.gz
ADD ${URL} /opt/
USER 1000:1000
