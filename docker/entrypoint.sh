#!/bin/sh
# Entry point of the site image: one image, one role per container.
#   web      gunicorn (docker/gunicorn.conf.py)
#   api      uvicorn for /api/ (ASGI: `Prefer: wait` waits as a coroutine, not a thread; docs/api.md)
#   worker   Celery worker, CELERY_IO_CONCURRENCY threads (default 64): submits and polls
#   images   Celery worker, CELERY_WORKER_CONCURRENCY threads (default 4): finish (the 512 result) and compose
#   composer optional: a worker of the compose queue alone (full-resolution results; the images role serves that
#            queue too), COMPOSE_WORKER_CONCURRENCY processes, default 1
#   beat     Celery beat (run exactly ONE, whatever the number of workers)
#   migrate  apply database migrations once, then exit (the one-shot compose service)
#   manage   any manage.py command, e.g. `manage createsuperuser`
# Anything else is executed as given (e.g. `sh` for a shell).
set -eu

# Run from the directory that holds manage.py (the image's /app, or a checkout when tested on a host).
cd "$(dirname "$0")/.."

role="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$role" in
  web)
    exec gunicorn -c docker/gunicorn.conf.py fashionsite.wsgi "$@"
    ;;
  api)
    # The developer API under ASGI. Forwarded headers are trusted from the proxy only (literal addresses).
    exec uvicorn fashionsite.asgi:application --host "${API_LISTEN_HOST:-0.0.0.0}" --port "${API_LISTEN_PORT:-8001}" \
      --workers "${API_WORKERS:-2}" --proxy-headers \
      --forwarded-allow-ips "${API_FORWARDED_ALLOW_IPS:-127.0.0.1,::1}" \
      --no-server-header --no-access-log --timeout-keep-alive 5 "$@"
    ;;
  worker)
    # The I/O steps (submit, poll, cancel, sweeps) on threads: each waits on the network, so one process keeps
    # many in flight.
    exec celery -A fashionsite worker --loglevel "${LOG_LEVEL:-INFO}" --queues celery --pool threads \
      --concurrency "${CELERY_IO_CONCURRENCY:-64}" -n "io@%h" --without-mingle --without-gossip "$@"
    ;;
  images)
    # The finish step (download, decode, re-encode, store) and the full-resolution compose (queue compose), never
    # on the I/O threads that poll. A few threads, not prefork processes: half of a finish waits on the network
    # (~104 ms wall, ~58 ms CPU per 512 result) and Pillow, numpy and OpenCV release the GIL in their C loops, so
    # one prefork process idled through every round trip (bench_jobs, 500 at once: COMPLETED -> stored median
    # 18 s with one prefork process, 4.3 s with 4 threads; docs/performance.md "Edit jobs").
    # Queue order matters: images first (CELERY_BROKER_TRANSPORT_OPTIONS queue_order_strategy "priority"), so a
    # free thread saves every COMPLETED 512 result before it starts a compose.
    exec celery -A fashionsite worker --loglevel "${LOG_LEVEL:-INFO}" --queues images,compose --pool threads \
      --concurrency "${CELERY_WORKER_CONCURRENCY:-4}" -n "images@%h" --without-mingle --without-gossip "$@"
    ;;
  composer)
    exec celery -A fashionsite worker --loglevel "${LOG_LEVEL:-INFO}" -Q compose -n "compose@%h" \
      --concurrency "${COMPOSE_WORKER_CONCURRENCY:-1}" -O fair --without-mingle --without-gossip "$@"
    ;;
  beat)
    # The schedule lives in settings (CELERY_BEAT_SCHEDULE); this file only remembers last run times.
    exec celery -A fashionsite beat --loglevel "${LOG_LEVEL:-INFO}" \
      --schedule "${CELERY_BEAT_SCHEDULE_FILE:-/tmp/celerybeat-schedule}" "$@"
    ;;
  migrate)
    # Compose starts this once postgres is healthy, but not every engine honours service_healthy (podman-compose
    # on podman < 4.6 skips it with a warning), so wait for the database here as well.
    python docker/healthcheck.py database --wait "${MIGRATE_WAIT_SECONDS:-120}"
    python manage.py migrate --noinput
    exec python manage.py check --deploy --fail-level ERROR
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
