# oracle: skip=a remote ADD of a fixed URL needs the network (rlp006-checksum and buildkit-arg-url fetch theirs from the test)
# expect: RLP006
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ADD https://example.org/tool.tar.gz /opt/tool.tar.gz
USER 1000:1000
