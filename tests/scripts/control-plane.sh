#!/usr/bin/env bash
# A real local Kubernetes control plane for tests and the demo, on loopback: Debian's etcd-server
# plus kube-apiserver, kube-controller-manager and kube-scheduler built by build-kube.sh from
# Debian's `kubernetes` source package (v1.20.2), with a static admin token.
#
# Kubernetes' own controllers act as in any cluster: the ServiceAccount and token controllers
# (a `default` ServiceAccount and its token Secret in each namespace, mounted into Pods by the
# apiserver's admission), the garbage collector (ownerReferences cascade), the namespace
# controller (`kubectl delete namespace` finishes), Deployments/ReplicaSets/Jobs/CronJobs/
# DaemonSets, eviction and disruption budgets, and the node-lifecycle controller with its
# default grace periods (a Node whose Lease is not renewed for 40 s turns Unknown and is tainted
# unreachable; its Pods are evicted 300 s later). The scheduler places Pods with the default
# profile.
#   - service-account signing key: STATE_DIR/sa.key (the apiserver verifies with sa.pub; the
#     token controller signs with sa.key)
#   - root CA published to Pods (ca.crt of token Secrets): the apiserver's self-signed serving
#     certificate, STATE_DIR/certs/apiserver.crt
#   - no leader election (one instance of each); their HTTPS health ports are free loopback
#     ports (STATE_DIR/*.port); logs in STATE_DIR/*.log
#
# usage:
#   control-plane.sh start STATE_DIR [--port PORT] [--watch-pid PID] [--bare]
#       starts etcd + kube-apiserver (+ controller-manager and scheduler unless --bare), waits
#       until all are ready, prints the kubeconfig path.
#       --bare: only etcd and the apiserver, as envtest gives (no GC, no namespace deletion,
#       no ServiceAccounts): for tests that say why they need it.
#       With --watch-pid, all are stopped as soon as process PID exits and STATE_DIR is
#       removed (tests use this so nothing outlives the test binary, even when it is killed).
#   control-plane.sh stop STATE_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-}; dir=${2:-}
[[ -n $cmd && -n $dir ]] || { sed -n 2,12p "$0" >&2; exit 2; }
shift 2

stop() {
  local d=$1
  for f in "$d/watchdog.pid" "$d/scheduler.pid" "$d/controller-manager.pid" "$d/apiserver.pid" "$d/etcd.pid"; do
    [[ -f $f ]] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}

case $cmd in
stop) stop "$dir"; exit 0 ;;
start) ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac

port=""; watch_pid=""; bare=""
while [[ $# -gt 0 ]]; do
  case $1 in
  --port) port=$2; shift 2 ;;
  --watch-pid) watch_pid=$2; shift 2 ;;
  --bare) bare=1; shift ;;
  *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

# Distinct free loopback ports, all bound at once (two separate binds of port 0 may return the
# same port); a port someone else takes before our process binds it is caught by a retry.
free_ports() { python3 -c '
import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"; }
free_port() { free_ports 1; }
# up PIDFILE CHECK...: waits up to 60 s for CHECK to succeed; fails at once when the process
# of PIDFILE has exited.
up() {
  local pidfile=$1; shift
  for _ in $(seq 240); do
    "$@" && return 0
    kill -0 "$(cat "$pidfile")" 2>/dev/null || return 1
    sleep 0.25
  done
  return 1
}
# gone NAME LINES: says why NAME did not come up and stops its process.
gone() {
  echo "$1 did not come up; last lines of $dir/$1.log:" >&2
  tail -n "$2" "$1.log" >&2
  kill "$(cat "$1.pid")" 2>/dev/null || true
  wait "$(cat "$1.pid")" 2>/dev/null || true
}
fixed_port=$port
kube_dir=${KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-1.20.2}
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  [[ -x $kube_dir/$b ]] || kube_dir=$("$here/build-kube.sh" | tail -n1)
done
bin=${KUBE_APISERVER:-$kube_dir/kube-apiserver}
command -v etcd >/dev/null || { echo "etcd not found: run tests/scripts/setup.sh" >&2; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cd "$dir"
[[ -f sa.key ]] || { openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null; }
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$token,admin,admin-uid,system:masters" > tokens.csv

if [[ -n $watch_pid ]]; then
  # setsid + closed fds: the watchdog must not keep the caller's pipes open.
  # and then the state directory goes (etcd's data is ~100 MB a control plane)
  setsid bash -c "while kill -0 $watch_pid 2>/dev/null; do sleep 0.5; done; kill \$(cat '$dir/scheduler.pid' '$dir/controller-manager.pid' '$dir/apiserver.pid' '$dir/etcd.pid' 2>/dev/null) 2>/dev/null; sleep 2; rm -rf '$dir'" \
    </dev/null >/dev/null 2>&1 &
  echo $! > watchdog.pid
fi

etcd_healthy() { curl -sf "http://127.0.0.1:$etcd_port/health" 2>/dev/null | grep -q '"health":"true"'; }
apiserver_ready() { curl -sfk -H "Authorization: Bearer $token" "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; }

# etcd, healthy before the apiserver starts (an apiserver without etcd gives up after ~20 s
# with "context deadline exceeded"), then the apiserver; each is retried on new ports.
ready=""
for _ in 1 2 3; do
  read -r etcd_port peer_port <<<"$(free_ports 2)"
  rm -rf "$dir/etcd"
  etcd --name cp --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "cp=http://127.0.0.1:$peer_port" --quota-backend-bytes=4294967296 > etcd.log 2>&1 &
  echo $! > etcd.pid
  if up etcd.pid etcd_healthy; then ready=1; break; fi
  gone etcd 5
done
[[ -n $ready ]] || { stop "$dir"; exit 1; }
ready=""
for _ in 1 2 3; do
  port=${fixed_port:-$(free_port)}
  "$bin" --etcd-servers="http://127.0.0.1:$etcd_port" --bind-address=127.0.0.1 --secure-port="$port" \
    --advertise-address=127.0.0.1 --cert-dir="$dir/certs" --token-auth-file="$dir/tokens.csv" \
    --authorization-mode=RBAC --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$dir/sa.pub" --service-account-signing-key-file="$dir/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --endpoint-reconciler-type=none --insecure-port=0 \
    --max-requests-inflight=1000 --max-mutating-requests-inflight=500 > apiserver.log 2>&1 &
  echo $! > apiserver.pid
  if up apiserver.pid apiserver_ready; then ready=1; break; fi
  gone apiserver 20
done
[[ -n $ready ]] || { stop "$dir"; exit 1; }

export KUBECONFIG=$dir/kubeconfig
kubectl config set-cluster local --server="https://127.0.0.1:$port" --certificate-authority="$dir/certs/apiserver.crt" --embed-certs=true >/dev/null 2>&1 \
  || kubectl config set-cluster local --server="https://127.0.0.1:$port" --insecure-skip-tls-verify=true >/dev/null
kubectl config set-credentials admin --token="$token" >/dev/null
kubectl config set-context local --cluster=local --user=admin --namespace=default >/dev/null
kubectl config use-context local >/dev/null

if [[ -z $bare ]]; then
  read -r kcm_port sched_port <<<"$(free_ports 2)"
  echo "$kcm_port" > controller-manager.port; echo "$sched_port" > scheduler.port
  "$kube_dir/kube-controller-manager" --kubeconfig="$KUBECONFIG" --leader-elect=false \
    --service-account-private-key-file="$dir/sa.key" --root-ca-file="$dir/certs/apiserver.crt" \
    --use-service-account-credentials=false --controllers='*' \
    --node-monitor-grace-period=40s --pod-eviction-timeout=5m0s \
    --port=0 --bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$dir/kcm-certs" \
    --authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG" > controller-manager.log 2>&1 &
  echo $! > controller-manager.pid
  "$kube_dir/kube-scheduler" --kubeconfig="$KUBECONFIG" --leader-elect=false \
    --port=0 --bind-address=127.0.0.1 --secure-port="$sched_port" --cert-dir="$dir/scheduler-certs" \
    --authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG" > scheduler.log 2>&1 &
  echo $! > scheduler.pid
  healthz() { curl -sfk "https://127.0.0.1:$(cat "$1.port")/healthz" >/dev/null 2>&1; }
  for c in controller-manager scheduler; do
    up "$c.pid" healthz "$c" || { gone "$c" 20; stop "$dir"; exit 1; }
  done
  # the controllers act: the default namespace gets its ServiceAccount and token Secret
  for _ in $(seq 240); do
    [[ -n $(kubectl get serviceaccount default -n default -o 'jsonpath={.secrets[0].name}' 2>/dev/null) ]] && break
    sleep 0.25
  done
fi
echo "$KUBECONFIG"
