# expect: RLP013
# In a heredoc of a builder stage whose output the final stage copies, and
# through command substitution.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d AS build
RUN <<EOF
set -e
sh -c "$(wget -qO- https://example.org/get.sh)"
echo built > /out
EOF
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
COPY --from=build /out /out
USER 1000:1000
