# syntax=docker/dockerfile:1
# expect: RLP001 RLP004
# The heredoc examples of Docker's documentation, one image.
FROM debian:bookworm
RUN <<EOT bash
  set -ex
  apt-get update
  apt-get install -y --no-install-recommends vim=2:9.0.1378-2
EOT
RUN <<EOT
  mkdir -p foo/bar
EOT
RUN <<EOT
#!/usr/bin/env python3
print("hello world")
EOT
RUN python3 <<EOF
with open("/hello", "w") as f:
    print("Hello", file=f)
    print("World", file=f)
EOF
RUN <<FILE1 cat > file1 && <<FILE2 cat > file2
I am
first
FILE1
I am
second
FILE2
ARG FOO=bar
COPY <<-EOT /script.sh
	echo "hello ${FOO}"
	EOT
ENTRYPOINT ["/bin/sh", "/script.sh"]
COPY <<EOF greeting.txt
hello world
EOF
