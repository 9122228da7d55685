#!/bin/sh
# One machine's part in the bot's Ray cluster (docs/scaling-out.md). Run it on each machine, in this order:
#
#   scripts/cluster-node.sh token                      on the head, once: writes ~/.ray/auth_token; copy that file to
#                                                      ~/.ray/auth_token on every other machine before it joins
#   scripts/cluster-node.sh head MY_IP                 the head (cluster state, port 6379), on the private address
#   scripts/cluster-node.sh worker HEAD_IP MY_IP       each GPU machine (Ray finds its GPUs: one style actor each)
#   scripts/cluster-node.sh bot HEAD_IP MY_IP          the bot's machine: a node that runs nothing, for the bot to
#                                                      reach the cluster through; then start the bot (below)
#   scripts/cluster-node.sh leave                      any machine: leave the cluster (ray stop)
#
# Options after the addresses go to `ray start` (e.g. --num-gpus=2, or the fixed ports a firewall needs).
# The bot on its machine: RAY_AUTH_MODE=token NST_BACKEND=ray RAY_ADDRESS=HEAD_IP:6379 nst-bot
set -eu
export RAY_AUTH_MODE=token
usage="usage: $0 token | head MY_IP | worker HEAD_IP MY_IP | bot HEAD_IP MY_IP | leave  [ray start options]"
role=${1:-}
case "$role" in
token)
    ray get-auth-token --generate >/dev/null
    echo "token in ~/.ray/auth_token: copy it to ~/.ray/auth_token on every machine of the cluster"
    ;;
head)
    [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
    ip=$2; shift 2
    exec ray start --head --node-ip-address="$ip" --port=6379 --num-gpus=0 \
        --include-dashboard=false --disable-usage-stats "$@"
    ;;
worker)
    [ $# -ge 3 ] || { echo "$usage" >&2; exit 2; }
    head=$2; ip=$3; shift 3
    exec ray start --address="$head:6379" --node-ip-address="$ip" --disable-usage-stats "$@"
    ;;
bot)
    [ $# -ge 3 ] || { echo "$usage" >&2; exit 2; }
    head=$2; ip=$3; shift 3
    exec ray start --address="$head:6379" --node-ip-address="$ip" --num-cpus=0 --num-gpus=0 \
        --disable-usage-stats "$@"
    ;;
leave)
    exec ray stop
    ;;
*)
    echo "$usage" >&2
    exit 2
    ;;
esac
