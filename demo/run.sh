#!/usr/bin/env bash
# The whole hookgate loop on one machine, with no GitHub and no setup:
#   1. a gate that passes: hookgate calls the test service, which works for a moment and calls
#      back with a Standard Webhooks signature through an embedded relay;
#   2. the same gate failing: the service calls back `success: false` and hookgate exits 1;
#   3. the run as it happens inside GitHub Actions: a standalone `hookgate relay`, and the job
#      summary and step outputs hookgate writes for the workflow.
set -euo pipefail
cd "$(dirname "$0")/.."

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bold "Building hookgate and the demo service (debug build; the first one takes a few minutes)"
cargo build --quiet -p hookgate --bin hookgate && cargo build --quiet -p hookgate-demo-service
hookgate=$PWD/target/debug/hookgate

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A shared secret, as the two repositories of a repository_dispatch loop would keep it.
secret="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"

# Starts a program in the background and waits for the line "listening on URL" in its log.
start_and_wait_for_url() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    if url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -n1 | cut -d' ' -f3) && [[ -n $url ]]; then
      echo "$url"
      return 0
    fi
    sleep 0.1
  done
  echo "error: $* did not start; its log:" >&2
  cat "$log" >&2
  return 1
}

service_url=$(DEMO_CALLBACK_SECRET=$secret start_and_wait_for_url "$work/service.log" \
  target/debug/hookgate-demo-service "$hookgate")
echo "test service listening on $service_url"

bold "1. hookgate plan: what the after-deployment gate of staging will do"
"$hookgate" plan --file demo/deploy.yml --target staging --phase after-deployment

bold "2. hookgate run: the service runs its tests and calls back, signed (expect success)"
"$hookgate" run --file demo/deploy.yml --target staging --phase after-deployment \
  --context "service_url=$service_url" --secret "callback_secret=$secret"
echo "exit code: $? (0: every gate passed)"

bold "3. The same gate when the tests fail (expect failure, exit code 1)"
set +e
"$hookgate" run --file demo/deploy.yml --target staging --phase after-deployment \
  --context "service_url=$service_url" --context fail=true --secret "callback_secret=$secret"
code=$?
set -e
echo "exit code: $code (1: a gate failed, so the production job that needs this one would not run)"
[[ $code == 1 ]] || { echo "error: expected exit code 1" >&2; exit 1; }

bold "4. Inside GitHub Actions: a standalone relay, the job summary and the step outputs"
relay_token=$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 18080)
relay_url="http://127.0.0.1:$port"
HOOKGATE_RELAY_TOKENS=$relay_token "$hookgate" relay --listen "127.0.0.1:$port" \
  --public-url "$relay_url" --store "sqlite:$work/relay.sqlite" >"$work/relay.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  "$hookgate" healthcheck --url "$relay_url/healthz" 2>/dev/null && break
  sleep 0.1
done
"$hookgate" healthcheck --url "$relay_url/healthz" || { cat "$work/relay.log" >&2; exit 1; }
echo "relay listening on $relay_url (SQLite file $work/relay.sqlite)"
: >"$work/summary.md"
: >"$work/output.txt"
# The variables a runner sets; check runs and deployment statuses are off, as there is no GitHub.
env GITHUB_ACTIONS=true GITHUB_REPOSITORY=demo/shop GITHUB_SHA=0123456789abcdef0123456789abcdef01234567 \
  GITHUB_RUN_ID=1 GITHUB_RUN_ATTEMPT=1 GITHUB_SERVER_URL=https://github.com \
  GITHUB_STEP_SUMMARY="$work/summary.md" GITHUB_OUTPUT="$work/output.txt" \
  INPUT_CHECK-RUNS=false INPUT_DEPLOYMENT-STATUS=false \
  HOOKGATE_RELAY_TOKEN="$relay_token" \
  "$hookgate" run --file demo/deploy.yml --target staging --phase after-deployment \
  --relay "$relay_url" --context "service_url=$service_url" --secret "callback_secret=$secret"

bold "The job summary (\$GITHUB_STEP_SUMMARY) the workflow run would show"
cat "$work/summary.md"
bold "The step outputs (\$GITHUB_OUTPUT)"
cat "$work/output.txt"
bold "Done: dispatch, signed callback, relay, verdict and report, all on this machine."
