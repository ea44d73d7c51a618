# expect: RLP007
# A wildcard that matches several directories (db and lib) flattens them
# into the destination like several named directories.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
COPY *b /flat/
USER 1000:1000
