# expect: RLP006
# ADD sources are ARG-expanded before dispatch: ${URL} is a URL (the lint
# oracle test serves ORACLE_URL itself).
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ARG ORACLE_URL=https://example.org
ARG URL=${ORACLE_URL}/tool.tar.gz
ADD ${URL} /opt/
USER 1000:1000
