#!/usr/bin/env bash
# Builds the images the container tests use, offline, from Debian's packages, and imports
# them into podman (no image registry is reachable here):
#   debian:bookworm    mmdebstrap --variant=minbase bookworm
#   postgres:15        the same with PostgreSQL 15, started as the image's command, clients
#                      trusted (a service image like Docker Hub's, without its entrypoint)
#   busybox:latest     busybox-static alone (a tiny image without bash)
# Named as Docker Hub's (docker.io/library/…), so a job's `image: debian:bookworm` finds them.
# The root file systems are cached as tarballs in $TESS_IMAGE_CACHE (default
# ~/.cache/tess-images), outside the clone, so CI builds them once. Idempotent. Run as root.
set -euo pipefail
cache=${TESS_IMAGE_CACHE:-$HOME/.cache/tess-images}
mkdir -p "$cache"
need() { command -v "$1" >/dev/null 2>&1 || missing+=" $2"; }
missing=""
need mmdebstrap mmdebstrap
[ -x /bin/busybox ] || missing+=" busybox-static"
if [ -n "$missing" ]; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
fi
have() { podman image exists "$1"; }
build_debian() { # NAME TARBALL [PACKAGES]
  local name=$1 tar=$cache/$2 include=${3:-}
  have "$name" && return 0
  if [ ! -s "$tar" ]; then
    # The extension tells mmdebstrap to write a tarball.
    mmdebstrap --quiet --variant=minbase ${include:+--include=$include} bookworm "$cache/partial-$2" >&2
    mv "$cache/partial-$2" "$tar"
  fi
  podman import --quiet "$tar" "$name" >/dev/null
}
build_debian docker.io/library/debian:bookworm debian-bookworm.tar
# `postgres` as the image's command, a database a client may reach without a password,
# and pg_isready for health checks: what the postgres image on Docker Hub gives a job.
build_debian docker.io/library/postgres:15 postgres-15.tar postgresql
if ! podman image inspect docker.io/library/postgres:15 --format '{{.Config.Cmd}}' | grep -q pg-start; then
  ctr=$(podman run -d docker.io/library/postgres:15 sleep infinity)
  podman exec "$ctr" sh -c 'cat > /usr/local/bin/pg-start <<SH
#!/bin/sh
set -e
dir=/var/lib/postgresql/15/main
conf=/etc/postgresql/15/main
echo "listen_addresses = '"'"'*'"'"'" >> \$conf/postgresql.conf
echo "port = 5432" >> \$conf/postgresql.conf
printf "local all all trust\\nhost all all 0.0.0.0/0 trust\\nhost all all ::/0 trust\\n" > \$conf/pg_hba.conf
mkdir -p /run/postgresql && chown postgres /run/postgresql
exec su postgres -c "/usr/lib/postgresql/15/bin/postgres -D \$dir -c config_file=\$conf/postgresql.conf"
SH
chmod +x /usr/local/bin/pg-start'
  podman commit --quiet --change 'CMD ["/usr/local/bin/pg-start"]' --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$ctr" docker.io/library/postgres:15 >/dev/null
  podman rm -f -t 0 "$ctr" >/dev/null
fi
if ! have docker.io/library/busybox:latest; then
  tmp=$(mktemp -d)
  mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/etc"
  cp /bin/busybox "$tmp/bin/busybox"
  for cmd in $("$tmp/bin/busybox" --list); do [ "$cmd" = busybox ] || ln -sf busybox "$tmp/bin/$cmd"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$tmp/etc/passwd"
  tar -C "$tmp" -cf "$cache/busybox.tar" .
  rm -rf "$tmp"
  podman import --quiet --change 'ENV PATH=/bin' "$cache/busybox.tar" docker.io/library/busybox:latest >/dev/null
fi
podman images --format '{{.Repository}}:{{.Tag}}' | sort >&2
