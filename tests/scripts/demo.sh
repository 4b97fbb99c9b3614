#!/usr/bin/env bash
# The demo on built-in defaults: a local control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler), the Proxmox VE simulator (3 nodes, an appliance index, a backup storage), the
# CRDs, a ProxmoxCluster + Secret with virtual nodes, the operator, the container examples and
# a small Deployment placed on the virtual nodes by the default scheduler; then
# `kubectl get proxmox` until the containers run and the Deployment's Pods are Running.
#
# usage: demo.sh            leave everything running (prints how to stop it); Ctrl-C stops it
#        demo.sh --headless stop everything once the containers run (used by the test suite)
#        demo.sh stop       stop a demo left running
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
state=${PLO_DEMO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/proxmox-lxc-operator/demo}
mode=${1:-interactive}

stop_all() {
  for f in "$state"/operator.pid "$state"/sim.pid; do
    [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  bash tests/scripts/control-plane.sh stop "$state/cp" 2>/dev/null || true
}

if [[ $mode == stop ]]; then stop_all; echo "demo stopped"; exit 0; fi
stop_all
rm -rf "$state"; mkdir -p "$state"

bash tests/scripts/setup.sh >/dev/null
if [[ -z ${PLO_BIN_DIR:-} ]]; then
  echo "building..."
  cargo build --quiet --bins
  PLO_BIN_DIR=$repo/target/debug
fi

echo "starting the control plane..."
export KUBECONFIG=$(bash tests/scripts/control-plane.sh start "$state/cp" | tail -n1)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
port=$(free_port)
token_id='root@pam!operator'
token_secret=$(python3 -c 'import uuid;print(uuid.uuid4())')
"$PLO_BIN_DIR/pve-sim" --listen "127.0.0.1:$port" --cert-out "$state/sim.pem" --clock-speed 4 \
  --token "$token_id=$token_secret" > "$state/sim.log" 2>&1 &
echo $! > "$state/sim.pid"
for _ in $(seq 100); do grep -q "listening on" "$state/sim.log" && break; sleep 0.1; done
fingerprint=$(sed -n 's/^pve-sim: certificate fingerprint //p' "$state/sim.log")
echo "pve-sim on https://127.0.0.1:$port (fingerprint $fingerprint)"

kubectl apply --validate=false -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata: {name: pve-credentials}
stringData: {tokenId: "$token_id", tokenSecret: "$token_secret"}
---
apiVersion: pve.lxc.dev/v1alpha1
kind: ProxmoxCluster
metadata: {name: default}
spec:
  endpoints: ["https://127.0.0.1:$port"]
  credentialsRef: {name: pve-credentials}
  tls: {fingerprint: "$fingerprint"}
  resyncInterval: 5s
  virtualNodes: {namespaces: All}
YAML

ui_port=$(free_port)
"$PLO_BIN_DIR/proxmox-lxc-operator" run --http-addr "127.0.0.1:$(free_port)" --ui-addr "127.0.0.1:$ui_port" \
  --virtual-nodes --kubelet-addr "127.0.0.1:$(free_port)" --node-address 127.0.0.1 \
  > "$state/operator.log" 2>&1 &
echo $! > "$state/operator.pid"
kubectl apply -f examples/lxccontainer-minimal.yaml -f examples/lxccontainer-full.yaml >/dev/null
echo "applied examples/lxccontainer-minimal.yaml and examples/lxccontainer-full.yaml"

if [[ $mode != --headless ]]; then trap 'echo; stop_all; echo "demo stopped"; exit 0' INT; fi
ok=""
for _ in $(seq 120); do
  out=$(kubectl get proxmox 2>&1 || true)
  if [[ $mode != --headless ]]; then clear 2>/dev/null || true; date; echo "$out"; fi
  if kubectl wait --for=condition=Ready --timeout=1s lxc --all >/dev/null 2>&1; then ok=1; break; fi
  sleep 1
done
echo "$out"
kubectl get proxmox
if [[ -z $ok ]]; then
  echo "containers did not become Ready; see $state/operator.log" >&2
  [[ $mode == --headless ]] && stop_all
  exit 1
fi
echo "all containers are Ready"
# Pods on Proxmox: a Deployment placed on the virtual nodes by the default scheduler
kubectl apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello-pods}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello-pods}}
  template:
    metadata: {labels: {app: hello-pods}}
    spec:
      nodeSelector: {type: virtual-kubelet}
      tolerations: [{key: pve.lxc.dev/virtual-node, operator: Exists}]
      containers:
        - name: web
          image: nginx:1.27
          resources: {limits: {cpu: 250m, memory: 128Mi}}
YAML
if ! kubectl rollout status deployment/hello-pods --timeout=120s >/dev/null; then
  kubectl get pods -o wide >&2
  echo "the Deployment's Pods did not run; see $state/operator.log" >&2
  [[ $mode == --headless ]] && stop_all
  exit 1
fi
kubectl get nodes -l pve.lxc.dev/virtual-node=true
kubectl get pods -o wide
echo "the Deployment's Pods are Running on Proxmox"
# a ServiceAccount for the web UI: everything on the pve.lxc.dev objects of this namespace
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: demo-ui}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: demo-ui}
rules:
  - {apiGroups: [pve.lxc.dev], resources: ["*"], verbs: ["*"]}
  - {apiGroups: [""], resources: [events], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: demo-ui}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: demo-ui}
subjects: [{kind: ServiceAccount, name: demo-ui, namespace: default}]
YAML
echo "web UI on http://127.0.0.1:$ui_port/ui (sign in with: kubectl create token demo-ui)"
if [[ $mode == --headless ]]; then stop_all; exit 0; fi
cat <<MSG

The demo keeps running. Try:
  export KUBECONFIG=$KUBECONFIG
  kubectl get proxmox
  kubectl describe lxc web
  kubectl patch lxc hello --type merge -p '{"spec":{"state":"Stopped"}}'
  kubectl scale deployment hello-pods --replicas=3 && kubectl get pods -o wide
  kubectl create namespace scratch && kubectl apply -n scratch -f examples/lxccontainer-minimal.yaml
  kubectl delete namespace scratch  # the container is destroyed, the namespace goes
  kubectl create token demo-ui      # then sign in at http://127.0.0.1:$ui_port/ui
Logs: $state/operator.log  $state/sim.log
Stop it with: bash tests/scripts/demo.sh stop   (or Ctrl-C now)
MSG
while true; do sleep 3600; done
