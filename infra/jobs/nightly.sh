#!/usr/bin/env bash
# Nightly full-corpus run: submit `pubmine run` to the cluster and wait for it.
# RAY_ADDRESS points at the head's dashboard (e.g. http://head:8265); the store and model in
# configs/nightly.yaml are S3 URLs, credentials come from the nodes' instance roles.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${RAY_ADDRESS:?set RAY_ADDRESS to the Ray dashboard URL, e.g. http://ray-head:8265}"
exec ray job submit --address "$RAY_ADDRESS" --working-dir . \
  --runtime-env infra/ray/runtime_env.yaml \
  --submission-id "pubmine-nightly-$(date -u +%Y%m%d)" \
  -- pubmine run --config configs/nightly.yaml "$@"
