# expect: RLP007
# COPY sources are ARG-expanded before dispatch: ${DIR} is the directory lib.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ARG DIR=lib
COPY a.sh ${DIR} /app/
USER 1000:1000
