# oracle: skip=a remote ADD needs the network
# expect: RLP006
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ADD https://example.org/tool.tar.gz /opt/tool.tar.gz
USER 1000:1000
