#!/usr/bin/env bash
# Fuzzes a release build against its own /openapi.json with schemathesis
# (https://schemathesis.readthedocs.io): every operation, positive and
# negative data, every check. Fails on any 500, any status the document does
# not list, any body that does not match its schema.
#
# Run from anywhere: `bash scripts/schemathesis.sh`. Needs PostgreSQL on
# 127.0.0.1:5432 (user postgres, no password), psql, and PyPI (schemathesis is
# installed into target/, once per version). Creates and drops its own
# database; starts and stops its own server. Extra arguments go to
# `schemathesis run` (e.g. `--max-examples 20`, `--seed 1`).
set -euo pipefail
cd "$(dirname "$0")/.."

# The version this script was last run with and found clean.
SCHEMATHESIS_VERSION=4.32.5

venv="$PWD/target/schemathesis-$SCHEMATHESIS_VERSION"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --release -q

db="keyward_st_$(date +%s)_$RANDOM"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
work=$(mktemp -d)
server=""
psql_admin() { psql -h 127.0.0.1 -U postgres -d "${1:-postgres}" -qtAX -v ON_ERROR_STOP=1 -c "$2"; }
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  psql_admin postgres "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT

DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" \
  KEYWARD__SERVER__PORT="$port" \
  KEYWARD__AUTH__BCRYPT_COST=4 \
  KEYWARD__RATE_LIMIT__ENABLED=false \
  KEYWARD__COOKIE__SECURE=false \
  RUST_LOG=warn \
  target/release/keyward serve >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
curl -fsS "$base/ready" >/dev/null

# One administrator, so that the admin routes are reached past their 403.
password="fuzz-$RANDOM-$RANDOM-password"
curl -fsS -o /dev/null -H 'Content-Type: application/json' \
  -d "{\"username\":\"fuzzadmin\",\"password\":\"$password\"}" "$base/auth/register"
psql_admin "$db" "UPDATE users SET admin = true WHERE username = 'fuzzadmin'"

# The fuzzer may revoke the very session it calls with (a bodiless logout,
# DELETE /admin/users/{id}/sessions, ...): the auth hook signs in again after
# any 401 (schemathesis's default `retry_on`), so later cases are still
# authorised.
cat >"$work/hooks.py" <<'EOF'
import os

import requests
import schemathesis


@schemathesis.auth()
class SignIn:
    def get(self, case, context):
        r = requests.post(
            os.environ["KEYWARD_FUZZ_BASE"] + "/auth/login",
            json={"username": "fuzzadmin", "password": os.environ["KEYWARD_FUZZ_PASSWORD"]},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
EOF

# The one accepted exception: `after` must name an existing user, which a
# schema cannot say, so a well-formed unknown id is a documented 400.
cat >"$work/schemathesis.toml" <<'EOF'
[[operations]]
include-operation-id = "list_users"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403"]
EOF

# schemathesis keeps a cache of past failures (replayed first on the next
# run) in `.schemathesis/` below its working directory: keep it in target/.
state="$PWD/target/schemathesis-state"
mkdir -p "$state"
status=0
(cd "$state" && KEYWARD_FUZZ_BASE="$base" KEYWARD_FUZZ_PASSWORD="$password" SCHEMATHESIS_HOOKS="$work/hooks.py" \
  "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
  --checks all \
  --report ndjson --report-ndjson-path "$state/events.ndjson" \
  "$@") || status=$?

cases=$(python3 - "$state/events.ndjson" <<'EOF'
import json, sys

total = 0
for line in open(sys.argv[1]):
    event = json.loads(line)
    finished = event.get("ScenarioFinished")
    if finished:
        total += len(finished.get("recorder", {}).get("cases", {}))
print(total)
EOF
) || cases="?"
echo "schemathesis $SCHEMATHESIS_VERSION: $cases test cases against $base"
if grep -q "panicked\|internal error" "$work/server.log"; then
  echo "the server logged failures:"
  grep "panicked\|internal error" "$work/server.log" | sort | uniq -c | head -20
  status=1
fi
exit "$status"
