#!/bin/sh
# The upstream postgres image's start-up, as far as docker-compose.yml uses it: a first start
# initialises PGDATA with POSTGRES_USER (password auth over TCP), creates POSTGRES_DB, runs
# /docker-entrypoint-initdb.d/*.sql in it; every start then runs the server on all addresses.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # UTF-8, as upstream (its LANG is en_US.utf8): drivers such as psycopg 3 need it.
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
    fi
    for f in /docker-entrypoint-initdb.d/*.sql; do
        [ -f "$f" ] && psql -v ON_ERROR_STOP=1 -U "$user" -d "$db" -f "$f"
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
fi
[ "${1:-postgres}" = postgres ] && shift
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
