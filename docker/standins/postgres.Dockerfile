# Local stand-in for postgres:15-alpine, built from Debian's packages where registry images cannot be pulled
# (scripts/build-images.sh). Same contract as the upstream image: POSTGRES_USER/PASSWORD/DB create the role and
# database on first start, data in /var/lib/postgresql/data, pg_isready on PATH, the server runs as "postgres".
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# No "main" cluster from the package's postinst: the entrypoint creates the one in PGDATA.
RUN mkdir -p /etc/postgresql-common && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
    && apt-get update && apt-get install -y --no-install-recommends postgresql-15 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY docker/standins/postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
