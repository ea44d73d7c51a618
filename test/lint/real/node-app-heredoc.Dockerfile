# syntax=docker/dockerfile:1
# expect: RLP001
# A Node app: npm ci with a cache mount, a heredoc that writes the health script.
ARG NODE_VERSION=22
FROM node:${NODE_VERSION}-alpine AS deps
WORKDIR /usr/src/app
RUN --mount=type=bind,source=package.json,target=package.json \
    --mount=type=bind,source=package-lock.json,target=package-lock.json \
    --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev

FROM node:${NODE_VERSION}-alpine AS final
ENV NODE_ENV production
WORKDIR /usr/src/app
COPY --from=deps /usr/src/app/node_modules ./node_modules
COPY . .
COPY --chmod=0755 <<-'EOF' /usr/local/bin/healthcheck
	#!/bin/sh
	wget -q -O- "http://127.0.0.1:${PORT:-3000}/healthz" >/dev/null
	EOF
HEALTHCHECK --interval=30s --timeout=3s CMD ["/usr/local/bin/healthcheck"]
USER 1000:1000
EXPOSE 3000
CMD ["node", "src/index.js"]
