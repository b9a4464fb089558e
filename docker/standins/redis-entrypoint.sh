#!/bin/sh
set -eu
if [ "${1:-}" != redis-server ]; then exec "$@"; fi
shift
chown redis:redis /data
exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no --dir /data "$@"
