# expect: none
# The expansions BuildKit documents, with set, empty and unset variables.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ARG EMPTY=
ARG SET=value
ENV A=${UNSET-dflt} B=${EMPTY-dflt} C=${EMPTY:-dflt} D=${SET:+alt} E=${EMPTY:+alt} F=${SET-x} G=${UNSET:+alt}
ENV H=${SET#va} I=${SET%ue} J="${SET} and $SET" K='$SET' L=\$SET M=${SET}s
LABEL org.example.a="${UNSET:-x}" org.example.b='${SET}'
USER 1000:1000
