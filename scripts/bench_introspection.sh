#!/usr/bin/env bash
# Introspection requests/s against GET /api/me, measured in the same run
# (issue 14 asks for a ratio of at least 0.8). Both verify an access token
# from memory; introspection also checks the service's credentials and
# reads a form body.
#
# Run: `bash scripts/bench_introspection.sh [binary]` (default: the release
# build in $CARGO_TARGET_DIR or target/, built if missing). Needs wrk,
# psql and PostgreSQL on 127.0.0.1:5432. Creates and drops its own database.
# KEYWARD_BENCH_SECONDS (default 5) per slice, KEYWARD_BENCH_ROUNDS
# (default 3) interleaved slices of each, KEYWARD_BENCH_USERS (default 200)
# distinct tokens, KEYWARD_BENCH_CONNECTIONS (default 32).
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="${1:-$target/release/keyward}"
if [ ! -x "$bin" ]; then
  cargo build --release -q
fi
seconds="${KEYWARD_BENCH_SECONDS:-5}"
rounds="${KEYWARD_BENCH_ROUNDS:-3}"
users="${KEYWARD_BENCH_USERS:-200}"
connections="${KEYWARD_BENCH_CONNECTIONS:-32}"

db="keyward_bench_introspect_$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
work=$(mktemp -d)
server=""
psql_admin() { psql -h 127.0.0.1 -U postgres -d postgres -qtAX -v ON_ERROR_STOP=1 -c "$1"; }
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  psql_admin "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export KEYWARD__SERVER__PORT="$port"
export KEYWARD__AUTH__BCRYPT_COST=4
export KEYWARD__RATE_LIMIT__ENABLED=false
export KEYWARD__AUTH__ACCESS_TTL_SECONDS=3600
export RUST_LOG=warn
"$bin" migrate
"$bin" serve 2>"$work/server.log" &
server=$!
for _ in $(seq 100); do
  curl -fs "$base/ready" >/dev/null && break
  sleep 0.1
done

service=$("$bin" services create bench)
client_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$service")
client_secret=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$service")
export BASIC="Basic $(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)"

# One user and one sign-in each: as many distinct tokens.
export TOKENS="$work/tokens"
for i in $(seq "$users"); do
  curl -fs -H 'content-type: application/json' \
    -d "{\"username\":\"bench$i\",\"password\":\"bench-password-$i\"}" "$base/auth/register" >/dev/null
  curl -fs -H 'content-type: application/json' \
    -d "{\"username\":\"bench$i\",\"password\":\"bench-password-$i\"}" "$base/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' >>"$TOKENS"
done

echo "keyward $(nproc) cores, $users tokens, $connections connections, $rounds x ${seconds}s each, interleaved"
run() {
  MODE="$1" wrk -t2 -c"$connections" -d"${seconds}s" -s scripts/introspection.lua "$base" |
    sed -n 's/^RESULT //p'
}
me_sum=0
in_sum=0
for r in $(seq "$rounds"); do
  me=$(run me)
  intro=$(run introspect)
  echo "round $r  /api/me:           $me"
  echo "round $r  /oauth/introspect: $intro"
  me_sum=$(python3 -c "print($me_sum + ${me%% *})")
  in_sum=$(python3 -c "print($in_sum + ${intro%% *})")
done
python3 -c "print(f'introspection / api_me = {$in_sum / $me_sum:.2f} ({$in_sum / $rounds:.0f} vs {$me_sum / $rounds:.0f} req/s)')"
