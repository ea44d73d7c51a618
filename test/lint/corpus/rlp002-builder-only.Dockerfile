# expect: none
# Build tools in the builder only; the final stage installs runtime packages and cleans up.
FROM debian:12@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc make && rm -rf /var/lib/apt/lists/*
RUN echo built > /out
FROM debian:12@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
RUN <<INSTALL
apt-get update
apt-get install -y --no-install-recommends curl
rm -rf /var/lib/apt/lists/*
INSTALL

COPY --from=build /out /usr/local/bin/out
USER 1000:1000
