# expect: RLP002
# The exec form ["/bin/sh", "-c", "…"] is a shell script like the shell form.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS build
RUN echo built > /out
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
COPY --from=build /out /out
RUN ["/bin/sh", "-c", "apk add --no-cache gcc musl-dev"]
USER 1000:1000
