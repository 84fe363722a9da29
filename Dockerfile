# syntax=docker/dockerfile:1
# edgegate image: `docker build -t edgegate .` (the Helm chart's default image is edgegate/edgegate:<appVersion>).
# test/e2e/chart/runtime-image.test.ts runs the runtime stage's steps without Docker.

# The base image is a build argument: the real node tests build a stand-in base of the same name without a
# registry (docs/testing.md). Its Node major agrees with the `node` devDependency and `engines` (a test checks).
ARG NODE_BASE=node:26-slim

# Build stage: compile TypeScript to dist/.
FROM ${NODE_BASE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY cmd ./cmd
COPY src ./src
RUN npx tsc -p tsconfig.build.json

# Runtime stage: production dependencies only, non-root, the CLI as entrypoint.
FROM ${NODE_BASE}
ENV NODE_ENV=production
# For pods that bind ports below 1024 themselves (hostNetwork with 80/443): a copy of node with the one file
# capability cap_net_bind_service. Kubernetes gives a non-root process no ambient capabilities, so adding
# NET_BIND_SERVICE to the container alone is not enough; the chart then runs node-netbind. The plain node stays
# capability-free, so pods that drop ALL (the default) can still exec it.
RUN apt-get update \
  && apt-get install -y --no-install-recommends libcap2-bin \
  && cp /usr/local/bin/node /usr/local/bin/node-netbind \
  && setcap cap_net_bind_service=+ep /usr/local/bin/node-netbind \
  && apt-get purge -y --auto-remove libcap2-bin \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Numeric, so the kubelet can check runAsNonRoot against the image (the image's `node` user is 1000).
USER 1000:1000
# The root filesystem can be read-only: the chart mounts the state dir (EDGEGATE_STATE_DIR) and /tmp.
EXPOSE 8080 8443 9901
# Exec form: node is PID 1 and gets SIGTERM itself (no shell in between). `run` handles SIGTERM/SIGINT with a
# graceful drain, and the primary reaps the workers it forks, so no init is needed.
ENTRYPOINT ["node", "dist/cmd/edgegate.js", "run"]
