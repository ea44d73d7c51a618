# syntax=docker/dockerfile:1
# expect: none
# RUN python3 <<EOF
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
RUN python3 <<EOF
with open('/hello', 'w') as f:
    print('Hello', file=f)
EOF

USER 1000:1000
