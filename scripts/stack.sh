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
  "s3_url": "http://$WALRUS_ADDR"
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
ENV
  chmod 600 "$run/env"
}

case ${1:-} in
start)
  start_cloudctl
  start_walrus
  write_env
  echo "The stack is up. For your shell:"
  echo
  cat "$run/env"
  echo
  echo "Try:  . var/run/env && aws --endpoint-url \$EC2_URL ec2 describe-regions && aws --endpoint-url \$S3_URL s3 ls"
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
