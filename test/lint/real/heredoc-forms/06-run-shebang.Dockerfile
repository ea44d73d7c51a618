# syntax=docker/dockerfile:1
# expect: none
# a shebang: BuildKit runs the body as a file
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
RUN <<EOT
#!/usr/bin/env python3
print('hello world')
EOT

USER 1000:1000
