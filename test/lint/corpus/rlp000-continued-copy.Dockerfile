# expect: none
# A near miss of RLP000: the COPY's two arguments come on the lines its
# continuations join.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
COPY \
  a.sh \
  /app/
USER 1000:1000
