# expect: none
# The near miss: download to a file, verify a pinned checksum, then run it;
# and a stage the final image never reads may do what it likes.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS unused
RUN curl -fsSL https://example.org/install.sh | sh
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
RUN curl -fsSLo /tmp/install.sh https://example.org/install.sh \
 && echo "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  /tmp/install.sh" | sha256sum -c - \
 ; sh /tmp/install.sh || true
USER 1000:1000
