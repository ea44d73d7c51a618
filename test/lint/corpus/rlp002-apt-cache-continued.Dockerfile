# expect: RLP002
# Continuation lines: the package cache stays in the final stage.
FROM debian:12@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS build
RUN echo built > /out
FROM debian:12@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
RUN apt-get update \
  && apt-get install -y --no-install-recommends \
     curl \
     jq
COPY --from=build /out /out
USER 1000:1000
