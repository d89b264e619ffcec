#!/usr/bin/env bash
# `make kind-up`: for users with Docker and kind. Creates the three spoke clusters from clusters/kind-*.yaml,
# gives the dispatcher its identity on each (deploy/spoke-rbac/dispatcher-rbac.yaml), writes a kubeconfig with
# one context per spoke (named after it) that uses that identity, and registers the spokes with a running hub.
#
#   CASPIAN_KIND_KUBECONFIG  where to write the dispatcher's kubeconfig   (default run/kind-spokes.kubeconfig)
#   CASPIAN_HUB_ADDRESS      hub to register the spokes with              (default 127.0.0.1:50050)
#   CASPIAN_KIND_REGISTER    0 skips the registration
#
# Then start the dispatcher with CASPIAN_DISPATCHER_KUBECONFIG pointing at that file. Re-running is safe:
# existing clusters are kept and the manifests re-applied.
set -euo pipefail
cd "$(dirname "$0")/.."

SPOKES=(carbon-kr carbon-jp carbon-cn)
declare -A ZONES=([carbon-kr]=KR [carbon-jp]=JP-TK [carbon-cn]=CN)
OUT=${CASPIAN_KIND_KUBECONFIG:-run/kind-spokes.kubeconfig}
HUB=${CASPIAN_HUB_ADDRESS:-127.0.0.1:50050}
REGISTER=${CASPIAN_KIND_REGISTER:-1}
NAMESPACE=caspian-jobs

for tool in docker kind kubectl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "kind-up: $tool is not installed; it needs Docker, kind and kubectl (make tools installs kubectl)" >&2
    exit 1
  fi
done

mkdir -p "$(dirname "$OUT")"
: >"$OUT"
chmod 600 "$OUT"

for name in "${SPOKES[@]}"; do
  config="clusters/kind-${name#carbon-}.yaml"
  if kind get clusters 2>/dev/null | grep -qx "$name"; then
    echo "kind-up: $name exists"
  else
    echo "kind-up: creating $name from $config"
    kind create cluster --config "$config" --wait 180s
  fi
  context="kind-$name"
  kubectl --context "$context" apply -f deploy/spoke-rbac/dispatcher-rbac.yaml >/dev/null

  # The token controller fills the Secret shortly after it is created.
  token=""
  for _ in $(seq 1 60); do
    token=$(kubectl --context "$context" -n caspian-system get secret caspian-dispatcher-token \
      -o jsonpath='{.data.token}' 2>/dev/null | base64 -d || true)
    [ -n "$token" ] && break
    sleep 1
  done
  if [ -z "$token" ]; then
    echo "kind-up: no token for caspian-dispatcher on $name" >&2
    exit 1
  fi
  server=$(kubectl config view --raw -o jsonpath="{.clusters[?(@.name=='$context')].cluster.server}")
  ca=$(kubectl config view --raw -o jsonpath="{.clusters[?(@.name=='$context')].cluster.certificate-authority-data}")

  kubectl --kubeconfig "$OUT" config set-cluster "$name" --server="$server" >/dev/null
  kubectl --kubeconfig "$OUT" config set "clusters.$name.certificate-authority-data" "$ca" >/dev/null
  kubectl --kubeconfig "$OUT" config set-credentials "caspian-dispatcher@$name" --token="$token" >/dev/null
  kubectl --kubeconfig "$OUT" config set-context "$name" --cluster="$name" \
    --user="caspian-dispatcher@$name" --namespace="$NAMESPACE" >/dev/null
  echo "kind-up: $name ready at $server (zone ${ZONES[$name]})"
done
kubectl --kubeconfig "$OUT" config use-context "${SPOKES[0]}" >/dev/null

if [ "$REGISTER" != "0" ]; then
  grpcurl=.venv/bin/grpcurl
  command -v "$grpcurl" >/dev/null 2>&1 || grpcurl=grpcurl
  for name in "${SPOKES[@]}"; do
    body=$(printf '{"cluster":{"name":"%s","zone":"%s","kube_context":"%s","job_namespace":"%s"}}' \
      "$name" "${ZONES[$name]}" "$name" "$NAMESPACE")
    if "$grpcurl" -plaintext -d "$body" "$HUB" caspian.v1.HubService/RegisterCluster >/dev/null 2>&1; then
      echo "kind-up: registered $name with the hub at $HUB"
    else
      echo "kind-up: could not register $name with the hub at $HUB (is it running?); later, run:" >&2
      echo "  $grpcurl -plaintext -d '$body' $HUB caspian.v1.HubService/RegisterCluster" >&2
    fi
  done
fi

echo "kind-up: done. Start the dispatcher with CASPIAN_DISPATCHER_KUBECONFIG=$OUT"
