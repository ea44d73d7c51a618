# The image that stands in for every external image of the lint corpus in
# the BuildKit oracle test (xtask/tests/lint_oracle.rs): static busybox (the
# named build context `busybox`, laid out by scripts/setup-host.sh), a root
# user, and no-op package managers and installers, since no distribution's
# package repository is reachable on our test machines. The test compares
# how BuildKit reads a Dockerfile (config, stages, steps, files placed),
# not what a package install does. Its config is not empty, so inheriting
# from a base is tested too.
# hadolint global ignore=DL3022
FROM scratch
ARG TARGETARCH
COPY --from=busybox ${TARGETARCH}/busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /tmp /usr/local/bin \
 && printf 'root:x:0:0:root:/root:/bin/sh\n' > /etc/passwd \
 && printf 'root:x:0:\n' > /etc/group \
 && for tool in apt-get apt apk dnf microdnf yum zypper pip pip3 uv curl wget gcc make cargo go npm python3 bash useradd adduser addgroup; do \
      printf '#!/bin/sh\nexit 0\n' > "/usr/local/bin/$tool" && chmod 755 "/usr/local/bin/$tool"; \
    done
ENV BASE_VAR=from-the-base
WORKDIR /base
LABEL org.example.base="oracle"
EXPOSE 9000
CMD ["sh"]
