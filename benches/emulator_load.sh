#!/usr/bin/env bash
# Load benchmark of the emulator with wrk: the emulator pinned to one core (taskset -c 0),
# wrk on the other, rate limits off, 32 connections, 5 s per endpoint. Prints requests
# per second for simple reads. Needs wrk (apt-get install wrk) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet
port=${PORT:-18799}
taskset -c 0 target/release/slack-gitops emulator --seed examples/acme/slack.json --listen "127.0.0.1:$port" >/dev/null &
emulator=$!
trap 'kill $emulator' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/_emulator/settings" >/dev/null && break; sleep 0.1; done
settings=$(curl -s "http://127.0.0.1:$port/_emulator/settings" | python3 -c 'import json,sys; s=json.load(sys.stdin); s["rate_limits"]=False; print(json.dumps(s))')
curl -s -X PUT -H 'content-type: application/json' --data "$settings" "http://127.0.0.1:$port/_emulator/settings"
for path in "/api/auth.test" "/api/users.info?user=W00000010" "/api/conversations.info?channel=C00000001" "/scim/v2/Users/W00000010"; do
  rate=$(taskset -c 1 wrk -t1 -c32 -d5s -H "Authorization: Bearer xoxp-acme-admin" "http://127.0.0.1:$port$path" | awk '/Requests\/sec/ {print $2}')
  printf '%-45s %10s requests/s\n' "$path" "$rate"
  curl -s -X DELETE "http://127.0.0.1:$port/_emulator/log"
done
