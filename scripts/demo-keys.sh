#!/usr/bin/env bash
# demo-keys.sh DIR: makes the demo's identity key if it is not there yet:
# an Ed25519 key pair, DIR/sign/demo.pem (the private half, which flashload
# signs the shoppers' tokens with, as an auth service would) and
# DIR/verify/demo.pem (the public half, the directory [identity] keys names
# in config/flashgate.conf). For local runs only: a real sale's gateways
# get the auth service's public keys, and no gateway holds a private one.
set -euo pipefail
dir=${1:?usage: demo-keys.sh DIR}
if [ -f "$dir/sign/demo.pem" ] && [ -f "$dir/verify/demo.pem" ]; then
	exit 0
fi
mkdir -p "$dir/sign" "$dir/verify"
chmod 700 "$dir/sign"
openssl genpkey -algorithm ed25519 -out "$dir/sign/demo.pem" 2>/dev/null
openssl pkey -in "$dir/sign/demo.pem" -pubout -out "$dir/verify/demo.pem" 2>/dev/null
echo "demo-keys: made the demo identity key (kid demo, EdDSA) in $dir"
