# Sourced by scripts: makes a PostgreSQL server with trust authentication available
# and sets PG_ADMIN_URL to its `postgres` database.

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
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

# start_private_postgres DIR PORT [extra postgres -c options…]: a throwaway cluster, trust auth.
start_private_postgres() {
  local dir=$1 port=$2; shift 2
  local bin; bin=$(pg_bin)
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_pg_user "$bin/initdb" -D "$dir" -U postgres --auth=trust --no-sync >/dev/null
  fi
  local opts="-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=300"
  for o in "$@"; do opts="$opts -c $o"; done
  as_pg_user "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null
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
