#!/usr/bin/env bash
# Validate a rules directory, then create or update the livewatch-rules ConfigMap from it.
#
#   deploy/k8s/rules-configmap.sh [RULES_DIR]        (default: rules/ of this repository)
#
# Environment: NAMESPACE (default livewatch), CONFIGMAP (default livewatch-rules), KUBECTL (default
# kubectl), LIVEWATCH (default livewatch: the CLI, for `livewatch rules check`).
#
# Running workers pick the change up by themselves once kubelet has updated the mounted files
# (typically within a minute or two); no restart. The check runs first because a worker that starts
# on an invalid ruleset exits with code 2, and one that is running refuses the change.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RULES_DIR="${1:-$HERE/../../rules}"
NAMESPACE="${NAMESPACE:-livewatch}"
CONFIGMAP="${CONFIGMAP:-livewatch-rules}"
KUBECTL="${KUBECTL:-kubectl}"
LIVEWATCH="${LIVEWATCH:-livewatch}"

[ -d "$RULES_DIR" ] || { echo "rules-configmap.sh: no such directory: $RULES_DIR" >&2; exit 1; }
"$LIVEWATCH" rules check "$RULES_DIR"
"$KUBECTL" create configmap "$CONFIGMAP" --namespace "$NAMESPACE" --from-file="$RULES_DIR" \
  --dry-run=client -o yaml | "$KUBECTL" apply -f -
