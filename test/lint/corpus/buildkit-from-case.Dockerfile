# oracle: refused
# expect: RLP000
# FROM resolves stage names case-sensitively: `FROM Build` is an image
# reference with a capital, which BuildKit refuses (only COPY --from
# lower-cases).
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS Build
RUN echo hi
FROM Build
USER 1000:1000
