# syntax=docker/dockerfile:1
# expect: RLP001 RLP004
# A release stage in BuildKit's own style: a bind mount of another stage
# without a target (BuildKit mounts it at the working directory; hadolint
# insists on a target).
FROM golang:1.23-alpine AS binaries
WORKDIR /out
RUN echo built > tool

FROM alpine:3.21 AS releaser
RUN apk add --no-cache tar gzip
WORKDIR /work
ARG TARGETPLATFORM
RUN --mount=from=binaries \
  mkdir -p /out && tar czvf "/out/tool.$(echo "$TARGETPLATFORM" | sed 's/\//-/g').tar.gz" --mtime='2015-10-21 00:00Z' --sort=name .

FROM scratch AS release
COPY --link --from=releaser /out/ /
