#!/usr/bin/env bash
# The whole hookgate loop on one machine, with no GitHub and no setup:
#   1. a gate that passes: hookgate calls the test service, which works for a moment and calls
#      back with a Standard Webhooks signature through an embedded relay;
#   2. the same gate failing: the service calls back `success: false` and hookgate exits 1;
#   3. the run as it happens inside GitHub Actions: a standalone `hookgate relay`, and the job
#      summary and step outputs hookgate writes for the workflow;
#   4. gates that hold no runner: the relay as a GitHub App answering deployment protection
#      rules, with a small fake GitHub that sends the signed events and takes the answers: one
#      deployment approved, one rejected.
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

# Waits until the relay at URL answers its health check; shows its LOG and stops if it never does.
wait_for_health() {
  local url=$1 log=$2
  for _ in $(seq 1 100); do
    "$hookgate" healthcheck --url "$url/healthz" 2>/dev/null && return 0
    sleep 0.1
  done
  "$hookgate" healthcheck --url "$url/healthz" || { cat "$log" >&2; exit 1; }
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
wait_for_health "$relay_url" "$work/relay.log"
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
bold "5. Gates that hold no runner: the relay as the GitHub App of a deployment protection rule"
command -v curl >/dev/null || { echo "error: part 5 needs curl, to play GitHub's part" >&2; exit 1; }
# A port for the App's relay, known before it starts: the fake GitHub sends its events there.
app_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 18081)
app_url="http://127.0.0.1:$app_port"
webhook_secret=$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')
# The repository demo/shop as the fake GitHub serves it: its deployment file names the service.
mkdir -p "$work/github/demo/shop"
sed "s|SERVICE_URL|$service_url|" demo/app-deploy.yml >"$work/github/demo/shop/deploy.yml"
github_url=$(DEMO_RELAY_URL=$app_url DEMO_WEBHOOK_SECRET=$webhook_secret DEMO_FILES=$work/github \
  start_and_wait_for_url "$work/github.log" target/debug/hookgate-demo-service fake-github)
echo "fake GitHub listening on $github_url"
# The server's gates configuration: demo/shop may use the secret callback_secret, and the gates
# may call the demo service on this machine (loopback is refused unless allowed).
cat >"$work/gates.yml" <<YAML
secrets:
  demo/shop: [callback_secret]
allowOutbound: [127.0.0.1]
YAML
echo "gates configuration:"; sed 's/^/  /' "$work/gates.yml"
# The App's three settings (the key is the tests' throwaway App key), and where GitHub's API is.
HOOKGATE_GITHUB_APP_ID=1 HOOKGATE_GITHUB_APP_KEY=tests/vectors/github-app-test-key.pem \
  HOOKGATE_GITHUB_WEBHOOK_SECRET=$webhook_secret HOOKGATE_SECRET_callback_secret=$secret \
  "$hookgate" relay --listen "127.0.0.1:$app_port" --public-url "$app_url" \
  --store "sqlite:$work/app.sqlite" --github-api-url "$github_url" \
  --gates-config "$work/gates.yml" --gate-report-interval 1s >"$work/app.log" 2>&1 &
pids+=($!)
wait_for_health "$app_url" "$work/app.log"
echo "the App's relay listening on $app_url (POST /github/webhook)"
echo
echo "GitHub: a job deploying to production starts, and to production-eu:"
curl -fsS -X POST "$github_url/demo/deploy?environment=production&run_id=501"
curl -fsS -X POST "$github_url/demo/deploy?environment=production-eu&run_id=502"
answers=0
for _ in $(seq 1 300); do
  answers=$(curl -fsS "$github_url/demo/reviews" | grep -o '"state":"[a-z]*"' | wc -l || true)
  ((answers >= 2)) && break
  sleep 0.1
done
bold "What the fake GitHub received: status reports while the gates waited, then the answers"
cat "$work/github.log"
bold "The relay's log of each gate's state (repository, environment, run id, delivery)"
grep -E 'gate (opened|taken|decided|answered)' "$work/app.log" | sed 's/\x1b\[[0-9;]*m//g'
bold "The App's metrics"
curl -fsS "$app_url/metrics" | grep -E '^hookgate_gate' || true
((answers >= 2)) || { echo "error: expected two answers" >&2; cat "$work/app.log" >&2; exit 1; }
curl -fsS "$github_url/demo/reviews" | grep -q '"state":"approved"' || { echo "error: production was not approved" >&2; exit 1; }
curl -fsS "$github_url/demo/reviews" | grep -q '"state":"rejected"' || { echo "error: production-eu was not rejected" >&2; exit 1; }
echo "production: approved; production-eu: rejected; no runner waited for either."

bold "Done: dispatch, signed callback, relay, verdict and report, all on this machine."
