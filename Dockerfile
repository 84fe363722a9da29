# syntax=docker/dockerfile:1
# Build stage: compile TypeScript to dist/.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY cmd ./cmd
COPY src ./src
RUN npx tsc -p tsconfig.build.json

# Runtime stage: production dependencies only, non-root, the CLI as entrypoint.
FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
# The image's `node` user (uid 1000); the state dir is a volume in the chart.
USER node
EXPOSE 8080 8443 9901
# Node is PID 1 and handles SIGTERM/SIGINT itself (graceful drain); it forks only its own workers, which it reaps.
ENTRYPOINT ["node", "dist/cmd/edgegate.js", "run"]
