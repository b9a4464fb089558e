# Local stand-in for caddy:2-alpine from Debian's caddy package (scripts/build-images.sh): config at
# /etc/caddy/Caddyfile, certificates and its local CA under /data, wget for the compose health check.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends caddy wget ca-certificates \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /config /data
ENV XDG_CONFIG_HOME=/config \
    XDG_DATA_HOME=/data
WORKDIR /srv
EXPOSE 80 443 2019
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
