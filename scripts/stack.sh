#!/usr/bin/env bash
# Starts (start) or stops (stop) the one-host stack under ./var: what
# `make run` and `make stop` call. Each daemon runs in the background with
# its pid in var/run/<name>.pid and its log in var/log/<name>.log; stop
# stops exactly those pids.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
var=$top/var
run=$var/run
mkdir -p "$run" "$var/log"

WALRUS_ADDR=${WALRUS_ADDR:-127.0.0.1:8776}
CLOUDCTL_ADDR=${CLOUDCTL_ADDR:-127.0.0.1:8773}
REGION=${REGION:-us-east-1}
ZONE=${ZONE:-${REGION}a}
CLUSTERCTL_ADDR=${CLUSTERCTL_ADDR:-127.0.0.1:8774}
NODECTL_ADDR=${NODECTL_ADDR:-127.0.0.1:8775}
NODE_NAME=${NODE_NAME:-node-1}
BRIDGE=${BRIDGE:-koala0}
METADATA_PORT=${METADATA_PORT:-8780}
# Elastic IPs: the pool (addresses, FIRST-LAST ranges or CIDRs, space
# separated) and the interface they arrive on. Without an interface the
# addresses reach the guests from this host only; with one, clusterctl
# holds each associated address on it so the LAN reaches it too.
PUBLIC_IPS=${PUBLIC_IPS:-198.51.100.16/28}
# Volumes: ebs serves them over AoE on one end of a veth pair, the node
# reaches them on the other.
EBS_ADDR=${EBS_ADDR:-127.0.0.1:8777}
AOE_EBS_IF=${AOE_EBS_IF:-koalaaoe0}
AOE_NODE_IF=${AOE_NODE_IF:-koalaaoe1}
PUBLIC_IF=${PUBLIC_IF:-}

alive() { [[ -f $run/$1.pid ]] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

wait_http() { # name url
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
    alive "$1" || { echo "$1 exited; see var/log/$1.log:" >&2; tail -20 "$var/log/$1.log" >&2; return 1; }
    sleep 0.1
  done
  echo "$1 did not answer at $2; see var/log/$1.log" >&2
  return 1
}

# start NAME ARGS...: start bin/NAME in the background unless it runs.
start() {
  local name=$1
  shift
  if alive "$name"; then
    echo "$name already running (pid $(cat "$run/$name.pid"))"
  else
    nohup "bin/$name" "$@" >>"$var/log/$name.log" 2>&1 </dev/null &
    echo $! >"$run/$name.pid"
  fi
}

start_cloudctl() {
  local cfg=$var/cloudctl/config.json
  mkdir -p "$var/cloudctl"
  if [[ ! -f $cfg ]]; then
    cat >"$cfg" <<JSON
{
  "listen": "$CLOUDCTL_ADDR",
  "data_dir": "$var/cloudctl",
  "region": "$REGION",
  "zones": ["${REGION}a"],
  "s3_url": "http://$WALRUS_ADDR",
  "metadata_listen": "0.0.0.0:$METADATA_PORT"
}
JSON
  fi
  if [[ ! -f $run/admin.json ]]; then
    bin/cloudctl admin init -config "$cfg" -walrus-key "$var/cloudctl/walrus-key.json" >"$run/admin.json.tmp"
    mv "$run/admin.json.tmp" "$run/admin.json"
    chmod 600 "$run/admin.json"
  fi
  start cloudctl serve -config "$cfg"
  wait_http cloudctl "http://$CLOUDCTL_ADDR/_health"
}

start_walrus() {
  local cfg=$var/walrus/config.json
  mkdir -p "$var/walrus"
  if [[ ! -f $cfg ]]; then
    cat >"$cfg" <<JSON
{
  "listen": "$WALRUS_ADDR",
  "data_dir": "$var/walrus",
  "region": "$REGION",
  "domains": ["s3.localhost", "localhost"],
  "cloudctl_url": "http://$CLOUDCTL_ADDR",
  "component_credentials": "$var/cloudctl/walrus-key.json"
}
JSON
  fi
  start walrus serve -config "$cfg"
  wait_http walrus "http://$WALRUS_ADDR/_health"
}

# component_key NAME FILE: a cluster's or node's key, made once.
component_key() {
  [[ -s $2 ]] || bin/cloudctl admin component-key "$1" -o "$2" -config "$var/cloudctl/config.json"
}

start_clusterctl() {
  local dir=$var/clusterctl cfg=$var/clusterctl/config.json
  mkdir -p "$dir"
  component_key "cluster-$ZONE" "$dir/key.json"
  if [[ ! -f $cfg ]]; then
    cat >"$cfg" <<JSON
{
  "zone": "$ZONE",
  "listen": "$CLUSTERCTL_ADDR",
  "data_dir": "$dir",
  "cloudctl_url": "http://$CLOUDCTL_ADDR",
  "component_credentials": "$dir/key.json",
  "policy": "ROUNDROBIN",
  "subnet": "10.200.0.0/24",
  "network": {
    "mode": "MANAGED-NOVLAN",
    "bridge": "$BRIDGE",
    "gateway": "10.200.0.1",
    "metadata": "10.200.0.1:${METADATA_PORT}",
    "public_interface": "$PUBLIC_IF"
  }
}
JSON
  fi
  start clusterctl serve -config "$cfg"
  wait_http clusterctl "http://$CLUSTERCTL_ADDR/_health"
  bin/cloudctl admin cluster register "$ZONE" "http://$CLUSTERCTL_ADDR" -config "$var/cloudctl/config.json"
  # shellcheck disable=SC2086 # one word per pool entry
  bin/cloudctl admin cluster addresses "$ZONE" $PUBLIC_IPS -config "$var/cloudctl/config.json"
}

start_ebs() {
  local dir=$var/ebs cfg=$var/ebs/config.json
  mkdir -p "$dir"
  ip link show "$AOE_EBS_IF" >/dev/null 2>&1 || ip link add "$AOE_EBS_IF" type veth peer name "$AOE_NODE_IF"
  ip link set "$AOE_EBS_IF" up
  ip link set "$AOE_NODE_IF" up
  component_key ebs "$dir/key.json"
  if [[ ! -f $cfg ]]; then
    cat >"$cfg" <<JSON
{
  "listen": "$EBS_ADDR",
  "data_dir": "$dir",
  "interface": "$AOE_EBS_IF",
  "cloudctl_url": "http://$CLOUDCTL_ADDR",
  "walrus_url": "http://$WALRUS_ADDR",
  "component_credentials": "$dir/key.json"
}
JSON
  fi
  start ebs serve -config "$cfg"
  wait_http ebs "http://$EBS_ADDR/_health"
  bin/cloudctl admin cluster ebs "$ZONE" "http://$EBS_ADDR" -config "$var/cloudctl/config.json"
}

start_nodectl() {
  # The qemu user (libvirt-qemu) must reach the instance disks: the node's
  # directory and every parent must be traversable.
  local dir=$var/nodectl cfg=$var/nodectl/config.json
  mkdir -p "$dir"
  chmod 0755 "$var" "$dir"
  if ! su -s /bin/sh -c "test -x '$dir'" libvirt-qemu 2>/dev/null; then
    dir=/var/lib/koala/nodectl
    echo "nodectl: $var is not reachable by the qemu user; instance disks go to $dir"
    mkdir -p "$dir"
    chmod 0755 /var/lib/koala "$dir"
  fi
  component_key "$NODE_NAME" "$var/nodectl/key.json"
  if [[ ! -f $cfg ]]; then
    cat >"$cfg" <<JSON
{
  "name": "$NODE_NAME",
  "listen": "$NODECTL_ADDR",
  "data_dir": "$dir",
  "cluster_url": "http://$CLUSTERCTL_ADDR",
  "cloudctl_url": "http://$CLOUDCTL_ADDR",
  "walrus_url": "http://$WALRUS_ADDR",
  "component_credentials": "$var/nodectl/key.json",
  "driver": "libvirt",
  "probe_kernel": "$var/images/demo/vmlinuz",
  "bridge": "$BRIDGE",
  "aoe_interface": "$AOE_NODE_IF"
}
JSON
  fi
  scripts/libvirt-up.sh
  start nodectl serve -config "$cfg"
  wait_http nodectl "http://$NODECTL_ADDR/_health"
  bin/clusterctl node register "$NODE_NAME" "http://$NODECTL_ADDR" -config "$var/clusterctl/config.json" >/dev/null
}

# install_demo bundles, uploads and registers the demo kernel, ramdisk and
# machine image as the admin account, once; their IDs go to
# var/run/demo-images.
install_demo() {
  scripts/mkimage.sh "$var/images/demo"
  [[ -s $run/demo-images ]] && return 0
  local creds=$run/admin-creds
  [[ -d $creds ]] || bin/cloudctl admin credentials admin -dir "$creds" -config "$var/cloudctl/config.json" >/dev/null
  local kernel ramdisk machine
  (
    set -a
    # shellcheck disable=SC1091
    . "$creds/eucarc"
    set +a
    kernel=$(bin/cloudctl install-image -i "$var/images/demo/vmlinuz" -b koala-demo/kernel -n "koala demo kernel" -kernel true)
    ramdisk=$(bin/cloudctl install-image -i "$var/images/demo/initrd.img" -b koala-demo/ramdisk -n "koala demo ramdisk" -ramdisk true)
    machine=$(bin/cloudctl install-image -i "$var/images/demo/root.img" -b koala-demo/machine -n "koala demo" \
      -description "busybox guest that prints its instance ID" -kernel "$kernel" -ramdisk "$ramdisk")
    printf 'DEMO_KERNEL_ID=%s\nDEMO_RAMDISK_ID=%s\nDEMO_IMAGE_ID=%s\n' "$kernel" "$ramdisk" "$machine" >"$run/demo-images.tmp"
  )
  mv "$run/demo-images.tmp" "$run/demo-images"
}

write_env() {
  local key secret
  key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_key_id"])' "$run/admin.json")
  secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret_access_key"])' "$run/admin.json")
  cat >"$run/env" <<ENV
export AWS_ACCESS_KEY_ID=$key
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_DEFAULT_REGION=$REGION
export S3_URL=http://$WALRUS_ADDR
export AWS_ENDPOINT_URL_S3=http://$WALRUS_ADDR
export EC2_URL=http://$CLOUDCTL_ADDR
export AWS_ENDPOINT_URL_EC2=http://$CLOUDCTL_ADDR
export DEMO_IMAGE_ID=$(sed -n 's/^DEMO_IMAGE_ID=//p' "$run/demo-images")
ENV
  chmod 600 "$run/env"
}

case ${1:-} in
start)
  start_cloudctl
  start_walrus
  start_clusterctl
  start_ebs
  start_nodectl
  install_demo
  write_env
  echo "The stack is up. For your shell:"
  echo
  cat "$run/env"
  echo
  echo "Try:  . var/run/env && aws --endpoint-url \$EC2_URL ec2 describe-regions && aws --endpoint-url \$S3_URL s3 ls"
  echo "Boot the demo image:"
  echo "  . var/run/env && aws --endpoint-url \$EC2_URL ec2 run-instances --image-id \$DEMO_IMAGE_ID --instance-type m1.small"
  echo "A volume:  aws --endpoint-url \$EC2_URL ec2 create-volume --availability-zone $ZONE --size 1"
  echo "More accounts: bin/cloudctl admin account create NAME; their credential files: bin/cloudctl admin credentials NAME"
  ;;
stop)
  for pidfile in "$run"/*.pid; do
    [[ -e $pidfile ]] || continue
    name=$(basename "$pidfile" .pid)
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      echo "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
  done
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
