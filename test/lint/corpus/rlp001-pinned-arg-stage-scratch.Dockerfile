# expect: none
# An ARG default counts; a stage name and scratch are not external.
ARG BASE=alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
FROM ${BASE} AS build
RUN echo built > /out
FROM scratch AS empty
FROM build
COPY --from=build /out /out
USER 1000:1000
