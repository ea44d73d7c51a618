# expect: none
# COPY --from lower-cases the stage name and takes an index.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS Build
RUN echo built > /out && echo two > /two
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
COPY --from=BUILD /out /out
COPY --from=0 /two /two
USER 1000:1000
