# expect: none
# ENTRYPOINT clears the CMD inherited from the base image; a stage's own CMD
# survives it; shell forms run under the stage's SHELL.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS first
ENTRYPOINT ["/bin/true"]
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS second
CMD ["serve"]
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT exec run
FROM second
ENV PATH=/opt/bin:$PATH
USER 1000:1000
