#!/usr/bin/env bash
# `npm run migration:check` (run in CI): migrates a fresh database, then asks TypeORM what
# `migration:generate` would write for it. Anything at all means the entities and the migrations
# disagree, and a user following the README would get a migration that rebuilds tables: fail.
# SQLite always; PostgreSQL too when MIGRATION_CHECK_PG_URL is set (CI sets it), in a schema of
# its own that is dropped afterwards.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
schema="migration_check_$$"
cleanup() {
  rm -rf "$dir"
  if [ -n "${MIGRATION_CHECK_PG_URL:-}" ]; then
    psql -q "$MIGRATION_CHECK_PG_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1
  fi
}
trap cleanup EXIT

check() {
  local name=$1
  if ! npm run -s migration:run >"$dir/run.log" 2>&1; then
    cat "$dir/run.log"
    echo "migration:check: $name: migrating a fresh database failed"
    return 1
  fi
  if ! npm run -s typeorm -- migration:generate "$dir/Drift" --check >"$dir/generate.log" 2>&1; then
    cat "$dir/generate.log"
    echo "migration:check: $name: the entities and the migrations disagree (see above)"
    return 1
  fi
  echo "migration:check: $name: migration:generate finds nothing to change"
}

status=0
DATABASE_PATH="$dir/tasks.db" DATABASE_URL='' check sqlite || status=1
if [ -n "${MIGRATION_CHECK_PG_URL:-}" ]; then
  psql -q "$MIGRATION_CHECK_PG_URL" -c "CREATE SCHEMA $schema" >/dev/null || exit 1
  DATABASE_URL="$MIGRATION_CHECK_PG_URL?options=-c%20search_path%3D$schema" check postgres || status=1
fi
exit $status
