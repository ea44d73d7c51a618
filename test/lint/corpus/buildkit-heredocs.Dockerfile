# expect: none
# Heredoc forms: a file, several per line, <<- with tabs, a quoted delimiter
# (not expanded), a RUN with a heredoc, one with a program, one that
# redirects.
FROM alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d
ARG NAME=expanded
COPY <<EOF /etc/one.conf
one $NAME
EOF
COPY <<-EOT <<"RAW" /etc/many/
	tabbed
	EOT
$NOT_EXPANDED
RAW
RUN <<EOF
echo hi > /tmp/x
EOF
RUN <<-EOF sh
	echo tabbed
	EOF
RUN cat <<EOF > /tmp/y
from a command line
EOF
USER 1000:1000
