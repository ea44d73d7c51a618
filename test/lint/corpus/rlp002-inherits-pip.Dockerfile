# expect: RLP002
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS base
RUN apk add --no-cache python3
FROM base AS build
RUN apk add --no-cache py3-pip && pip install --no-cache-dir requests
FROM build AS final
USER 1000:1000
