#!/usr/bin/env bash
# pg_throwaway.sh start|start-durable|stop|env|pause|resume|restart-immediate|cut-replication|kill9|promote DIR,
# or standby DIR PRIMARY_DIR: a private PostgreSQL 15 cluster in DIR for tests and
# the demo, reachable only over a Unix socket in DIR (no TCP port, nothing shared with a
# system cluster). initdb refuses to run as root, so as root the cluster runs as the
# unprivileged `postgres` user (created by the postgresql package).
set -euo pipefail
cmd=${1:?usage: pg_throwaway.sh start|stop|env DIR}
dir=${2:?usage: pg_throwaway.sh start|stop|env DIR}
# WW_PG_BINDIR: another copy of the server binaries (test_schema runs one whose share
# directory lacks the waferwatch extension).
bindir=${WW_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bindir/initdb" ] || { echo "pg_throwaway: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# start-durable: the same with fsync and synchronous_commit on, for tests that crash the
# server and expect every acknowledged COMMIT to survive (the plain start trades that away
# for speed).
durable=0
[ "$cmd" = start-durable ] && { durable=1; cmd=start; }
case "$cmd" in
start)
  if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    echo "pg_throwaway: already running in $dir"; exit 0
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = 5432
shared_buffers = 128MB
max_connections = 200
log_min_messages = warning
CONF
  if [ "$durable" = 0 ]; then
    printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >>"$dir/data/postgresql.conf"
  fi
  # Extra settings, one per line (the fleet benchmark sizes the server for its load).
  if [ -n "${WW_PG_CONF:-}" ]; then
    printf '%s\n' "$WW_PG_CONF" >>"$dir/data/postgresql.conf"
  fi
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "pg_throwaway: running in $dir (PGHOST=$dir PGPORT=5432 PGUSER=postgres)"
  ;;
stop)
  if [ -d "$dir/data" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
env)
  echo "export PGHOST=$dir PGPORT=5432 PGUSER=postgres"
  ;;
# Fault injection for the delivery tests: crash-stop (no shutdown checkpoint), start the
# same cluster again, or both.
pause)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  ;;
resume)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  ;;
restart-immediate)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m immediate -w -t 60 restart >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  ;;
# A streaming standby of the cluster in $3 (started, durable), for the failover test:
# pg_basebackup over the primary's socket, standby.signal and primary_conninfo (-R).
standby)
  primary=${3:?usage: pg_throwaway.sh standby DIR PRIMARY_DIR}
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  as_owner "$bindir/pg_basebackup" -h "$primary" -p 5432 -U postgres -D "$dir/data" -R -X stream \
    -c fast >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; exit 1; }
  # The copy's settings are the primary's; its own socket lives in its own directory.
  printf "unix_socket_directories = '%s'\nhot_standby = on\n" "$dir" >>"$dir/data/postgresql.conf"
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  ;;
# The standby stops receiving WAL (an asynchronous standby that lags): what the primary
# commits from now on exists only there.
cut-replication)
  as_owner "$bindir/psql" -h "$dir" -p 5432 -U postgres -d postgres -qAt \
    -c "ALTER SYSTEM SET primary_conninfo = ''" -c "SELECT pg_reload_conf()" >/dev/null
  # Until its WAL receiver is gone (it is restarted on the reload, without a primary).
  for _ in $(seq 1 100); do
    n=$(as_owner "$bindir/psql" -h "$dir" -p 5432 -U postgres -d postgres -qAt \
      -c "SELECT count(*) FROM pg_stat_wal_receiver")
    [ "$n" = 0 ] && exit 0
    sleep 0.1
  done
  echo "pg_throwaway: the WAL receiver in $dir did not stop" >&2; exit 1
  ;;
# A crash of the whole server: the postmaster and every backend killed at once (no
# backend left to finish a commit after the postmaster is gone).
kill9)
  pid=$(head -n 1 "$dir/data/postmaster.pid")
  kids=$(pgrep -P "$pid" || true)
  # shellcheck disable=SC2086
  kill -9 "$pid" $kids
  ;;
promote)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null
  ;;
*)
  echo "pg_throwaway: unknown command $cmd" >&2; exit 2 ;;
esac
