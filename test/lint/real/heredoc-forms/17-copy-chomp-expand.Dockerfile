# syntax=docker/dockerfile:1
# expect: none
# COPY <<-EOT with an ARG expanded in the body
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ARG FOO=bar
COPY <<-EOT /script.sh
	echo "hello ${FOO}"
	EOT

USER 1000:1000
