#!/usr/bin/env bash
# Starts `strata server` in the background, waits for the node, deploys the
# hello demo and prints how to use the cluster.
set -euo pipefail
BIN=$1 DATA_DIR=$2
STRATA="$BIN/strata"
mkdir -p "$DATA_DIR"
if [ -f "$DATA_DIR/strata.pid" ] && kill -0 "$(cat "$DATA_DIR/strata.pid")" 2>/dev/null; then
  echo "run: strata server already running (pid $(cat "$DATA_DIR/strata.pid"))"
else
  echo "run: starting strata server (data dir $DATA_DIR, log $DATA_DIR/server.out)"
  nohup "$STRATA" server --data-dir "$DATA_DIR" >"$DATA_DIR/server.out" 2>&1 &
  echo $! >"$DATA_DIR/strata.pid"
fi
kubectl() { "$STRATA" kubectl --data-dir "$DATA_DIR" "$@"; }
echo "run: waiting for the node to be Ready"
for _ in $(seq 1 120); do
  if [ -f "$DATA_DIR/admin.kubeconfig" ] && kubectl wait --for=condition=Ready node --all --timeout=1s >/dev/null 2>&1; then break; fi
  if ! kill -0 "$(cat "$DATA_DIR/strata.pid")" 2>/dev/null; then echo "run: strata server exited:"; tail -5 "$DATA_DIR/server.out"; exit 1; fi
  sleep 1
done
cat "$DATA_DIR/server.out"
echo "run: building the hello image and pushing it to the embedded registry"
"$STRATA" image build --binary "$BIN/hello" --port 8080 --user 65532 -t localhost:5000/hello:v1 --push
echo "run: signing it with the cluster key; examples/image-policy.yaml lets signed images of the embedded registry run"
"$STRATA" image sign --cluster-key --data-dir "$DATA_DIR" localhost:5000/hello:v1
kubectl apply -f examples/image-policy.yaml
echo "run: deploying examples/hello"
kubectl apply -f examples/hello/deploy.yaml
kubectl rollout status deployment/hello --timeout=120s
kubectl get pods -o wide
cat <<MSG

Strata is running. The demo "hello" answers inside the cluster at
  http://hello.default.svc.cluster.local
Reach it from this machine:
  $STRATA kubectl --data-dir $DATA_DIR port-forward svc/hello 8080:80 &
  curl http://127.0.0.1:8080/
Use kubectl:
  $STRATA kubectl --data-dir $DATA_DIR get pods -A
  export KUBECONFIG=$DATA_DIR/admin.kubeconfig   # for your own kubectl, helm, ...
Stop the server:  make stop DATA_DIR=$DATA_DIR    (logs: $DATA_DIR/logs/)
MSG
