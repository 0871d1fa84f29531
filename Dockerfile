# Flowgate's processes in one image; the command picks the process:
#   docker run flowgate gateway | flows | subscriber | cache-proxy | start
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY cli cli
COPY lib lib
COPY schemas schemas
COPY server server
COPY flows flows
COPY events events
COPY cache-proxy cache-proxy
COPY db db
COPY bench bench
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
# The migrations are read at run time (flowgate db migrate, and a worker's start); the embedded
# database's thread is plain JavaScript, run from db/ (used when DATABASE_URL is unset).
COPY --from=build /app/db/migrations db/migrations
COPY --from=build /app/db/pglite-thread.mjs db/
COPY deploy/cache-policy.example.yaml deploy/
# Where `flowgate nats setup` writes the bus's keys in the compose stack (a named volume takes this owner).
RUN mkdir -p /nats && chown node:node /nats
USER node
EXPOSE 3000
ENTRYPOINT ["node", "dist/app/main.js"]
CMD ["start"]
