# expect: none
# ORACLE_URL: the lint oracle test serves these files itself.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ARG ORACLE_URL=https://example.org
ADD --checksum=sha256:09a742b48521893d9798feb5d6922ab081583ec30c61b0343a53f0fb78209652 ${ORACLE_URL}/tini /tini
USER 1000:1000
