# Sourced by scripts: makes a PostgreSQL server with trust authentication available
# and sets PG_ADMIN_URL to its `postgres` database; also starts, stops, replicates and
# promotes private clusters (scripts/pg-cluster).

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$d" ] && command -v pg_config >/dev/null; then d=$(pg_config --bindir); fi
  [ -n "$d" ] && echo "$d"
}

pg_answers() {
  psql "$1" -qtAc 'select 1' >/dev/null 2>&1
}

# Runs a command as the unprivileged postgres user when we are root (PostgreSQL refuses root).
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_postgres() {
  if [ -z "$(pg_bin)" ] || ! command -v psql >/dev/null; then
    echo "PostgreSQL is not installed: installing Debian's packages" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql postgresql-contrib >/dev/null
  fi
}

# A directory the postgres user owns (it refuses to run as root).
pg_owned_dir() {
  mkdir -p "$1"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$1"; fi
  chmod 0700 "$1"
}

# init_private_postgres DIR PORT [setting=value…]: a throwaway cluster with trust auth
# whose settings (port included) live in its own postgresql.conf, so that a plain
# `pg_ctl start` brings it back after a stop.
init_private_postgres() {
  local dir=$1 port=$2; shift 2
  local bin; bin=$(pg_bin)
  pg_owned_dir "$dir"
  as_pg_user "$bin/initdb" -D "$dir" -U postgres --auth=trust --no-sync >/dev/null
  {
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '/tmp'"
    echo "max_connections = 300"
    echo "fsync = on"
    for o in "$@"; do echo "$o"; done
  } | as_pg_user tee -a "$dir/postgresql.conf" >/dev/null
}

pg_start() {
  as_pg_user "$(pg_bin)/pg_ctl" -D "$1" -l "$1/server.log" -w -t 60 start >/dev/null
}

# start_private_postgres DIR PORT [setting=value…]: init on first use, then start.
start_private_postgres() {
  local dir=$1 port=$2; shift 2
  if [ ! -f "$dir/PG_VERSION" ]; then init_private_postgres "$dir" "$port" "$@"; fi
  pg_start "$dir"
}

ensure_postgres() {
  PG_ADMIN_URL=${MEDISLOT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  if command -v psql >/dev/null && pg_answers "$PG_ADMIN_URL"; then return 0; fi
  install_postgres
  # The machine's own cluster, if it has one that is merely stopped.
  if [ -z "${MEDISLOT_TEST_POSTGRES_URL:-}" ] && command -v pg_ctlcluster >/dev/null; then
    for v in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start >/dev/null 2>&1 || true
    done
    for _ in $(seq 1 20); do pg_answers "$PG_ADMIN_URL" && return 0; sleep 0.5; done
  fi
  # Otherwise (or if it wants passwords): a private cluster with trust auth.
  local port=55432 dir=${TMPDIR:-/tmp}/medislot-test-postgres
  PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
  if ! pg_answers "$PG_ADMIN_URL"; then
    start_private_postgres "$dir" "$port"
  fi
  pg_answers "$PG_ADMIN_URL" || { echo "could not start PostgreSQL (see $dir/server.log)" >&2; return 1; }
}
