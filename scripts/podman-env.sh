# Sourced by scripts/build-images.sh and scripts/test_deploy.py's callers: a private podman setup for this
# machine kind, kept under FAI_IMAGES_DIR (default /var/tmp/fai-images, outside the repository) and selected by
# CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, so no machine-wide podman configuration is touched.
#   runc     crun fails on this kernel's hybrid cgroups
#   vfs      no overlay mounts inside this machine
#   ulimits  raising rlimits is not permitted here, so every container gets the machine's own 1024
#   netavark its aardvark-dns resolves compose service names (the CNI backend here has no DNS plugin)
FAI_IMAGES_DIR="${FAI_IMAGES_DIR:-/var/tmp/fai-images}"
mkdir -p "$FAI_IMAGES_DIR/conf"
cat > "$FAI_IMAGES_DIR/conf/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
CONF
cat > "$FAI_IMAGES_DIR/conf/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$FAI_IMAGES_DIR/storage"
runroot = "/run/fai-images"
CONF
export FAI_IMAGES_DIR
export CONTAINERS_CONF="$FAI_IMAGES_DIR/conf/containers.conf"
export CONTAINERS_STORAGE_CONF="$FAI_IMAGES_DIR/conf/storage.conf"
