# Local stand-in for redis:7-alpine from Debian's redis-server (scripts/build-images.sh). Like the upstream image:
# data in /data, redis-cli on PATH, the server runs as "redis" and, started without a config file, leaves
# protected mode off (it listens on the private compose network only).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
COPY docker/standins/redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
