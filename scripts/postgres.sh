#!/usr/bin/env bash
# Makes a PostgreSQL server available for the storage tests and prints its URL:
#   export TESS_TEST_POSTGRES_URL=$(scripts/postgres.sh)
# Installs PostgreSQL with apt when missing, starts the Debian cluster, and creates a `tess`
# role (allowed to create the per-test databases) with a `tess` database. Run as root, or as
# a user who can sudo; idempotent.
set -euo pipefail
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive root apt-get install -y -qq postgresql >&2
fi
cluster=$(pg_lsclusters --no-header | head -1)
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  root pg_createcluster "$version" main >&2
  cluster=$(pg_lsclusters --no-header | head -1)
fi
read -r version name port status _ <<<"$cluster"
if [ "$status" != online ]; then
  root pg_ctlcluster "$version" "$name" start >&2
fi
for _ in $(seq 50); do
  as_postgres psql -p "$port" -qAtc 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.2
done
as_postgres psql -p "$port" -qAtc "SELECT 1 FROM pg_roles WHERE rolname = 'tess'" | grep -q 1 ||
  as_postgres psql -p "$port" -qc "CREATE ROLE tess LOGIN CREATEDB PASSWORD 'tess'" >&2
as_postgres psql -p "$port" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'tess'" | grep -q 1 ||
  as_postgres psql -p "$port" -qc "CREATE DATABASE tess OWNER tess" >&2
# Databases left by earlier test runs.
for db in $(as_postgres psql -p "$port" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'tess_test_%'"); do
  as_postgres psql -p "$port" -qc "DROP DATABASE IF EXISTS $db" >&2
done
echo "postgres://tess:tess@127.0.0.1:${port}/tess"
