#!/usr/bin/env bash
# Calling back without hookgate: a verdict signed GitHub's way (X-Hub-Signature-256) with curl
# and openssl, for a webhook with `callback: {auth: hmac, scheme: github}`. The body names the
# slot it is for, so the waiting run takes it for that slot only.
#
# The service gets CALLBACK_URL and SLOT from the request hookgate sent it, e.g. a body template
# '{"callbackUri": "{{ callback.uri }}", "slot": "{{ callback.slot }}"}'; HMAC_SECRET is the
# shared secret. SUCCESS is true or false; MESSAGE must not contain `"` or `\` here (a JSON
# encoder such as jq is the general answer).
set -euo pipefail
body=$(printf '{"success": %s, "mdMessage": "%s", "slot": "%s"}' "$SUCCESS" "$MESSAGE" "$SLOT")
signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$HMAC_SECRET" -r | cut -d' ' -f1)
curl -fsS -X POST "$CALLBACK_URL" \
  -H 'Content-Type: application/json' \
  -H "X-Hub-Signature-256: sha256=$signature" \
  --data-binary "$body"
