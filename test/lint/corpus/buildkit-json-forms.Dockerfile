# expect: none
# The JSON (exec) forms of COPY, ENTRYPOINT, CMD, HEALTHCHECK, VOLUME and SHELL.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
COPY ["a.sh", "b.sh", "/app/"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
HEALTHCHECK --interval=30s CMD ["true"]
VOLUME ["/data"]
SHELL ["/bin/sh", "-ec"]
RUN echo ok
EXPOSE 8080 53/udp
STOPSIGNAL SIGINT
USER 1000:1000
