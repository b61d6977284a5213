# The Conclave server image: `docker compose up` (docker-compose.yml) runs a cluster of these.
#
# BASE_IMAGE defaults to the official Node 20 slim image; any image with node and npm on PATH, /usr/bin/env
# and a `node` user (uid 1000) works (the tests build one from the machine's own Node runtime, which has
# no shell: every RUN below is in exec form for that reason).
ARG BASE_IMAGE=node:20-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /build
COPY package.json package-lock.json ./
# --ignore-scripts: the package's `prepare` build needs the sources (copied below); classic-level ships
# prebuilt binaries, which need no install script.
RUN ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY proto ./proto
RUN ["node", "node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"]
RUN ["npm", "prune", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]

FROM ${BASE_IMAGE}
WORKDIR /app
COPY --from=build /build/package.json ./package.json
COPY --from=build /build/node_modules ./node_modules
COPY --from=build /build/dist ./dist
COPY --from=build /build/proto ./proto
# The data directory belongs to the unprivileged user; a named volume mounted there starts as a copy of it.
RUN ["node", "-e", "require('fs').mkdirSync('/data', { recursive: true }); require('fs').chownSync('/data', 1000, 1000)"]
USER node
VOLUME ["/data"]
EXPOSE 8500 8300
# The agent stops cleanly on SIGTERM (it leaves no half-written state and exits 0 within a few seconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["agent", "-dev", "-client=0.0.0.0"]
