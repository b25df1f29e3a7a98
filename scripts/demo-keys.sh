#!/usr/bin/env bash
# demo-keys.sh DIR: makes the demo's identity key if it is not there yet:
# an HS256 secret, DIR/verify/demo.hs256 (the directory [identity] keys
# names in config/flashgate.conf) and the same secret as DIR/sign/demo.hs256
# (what flashload signs the shoppers' tokens with, as an auth service
# would). For local runs only. HS256 because the demo's 200,000 shoppers
# each order about once: every token is verified once, and on this 2-core
# machine, shared with flashload, Redis and the broker, an EdDSA check
# (about 60 times an HS256 one, BENCHMARKS.md "Identity") per new shopper
# is what the demo would measure. A real sale's gateways should get the
# auth service's EdDSA public keys, so that no gateway holds a key that
# can mint tokens (docs/identity.md).
set -euo pipefail
dir=${1:?usage: demo-keys.sh DIR}
if [ -f "$dir/sign/demo.hs256" ] && [ -f "$dir/verify/demo.hs256" ]; then
	exit 0
fi
mkdir -p "$dir/sign" "$dir/verify"
chmod 700 "$dir/sign" "$dir/verify"
rm -f "$dir/verify/demo.pem" "$dir/sign/demo.pem" # an older demo key
openssl rand -out "$dir/verify/demo.hs256" 32
cp "$dir/verify/demo.hs256" "$dir/sign/demo.hs256"
chmod 600 "$dir/verify/demo.hs256" "$dir/sign/demo.hs256"
echo "demo-keys: made the demo identity key (kid demo, HS256) in $dir"
