# expect: RLP002
# The trigger's RUN runs in the final stage, leaving pip there.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS build
RUN echo built > /out
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS runtime-base
ONBUILD RUN apk add --no-cache py3-pip && pip install --no-cache-dir requests
USER 1000:1000
FROM runtime-base
COPY --from=build /out /out
