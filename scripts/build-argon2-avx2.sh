#!/usr/bin/env bash
# Optional: rebuild the argon2 native binding from source with AVX2
# (x86-64-v3: Intel Haswell / AMD Excavator and newer). node-gyp-build then
# loads build/Release/argon2.node instead of the prebuilt SSE2 binary.
# `npm run bench:argon2` measured it 1.8-2.0x faster at the same parameters.
# Do NOT use on CPUs without AVX2: the process would die with SIGILL.
set -euo pipefail
dir="${1:-node_modules/argon2}"
grep -qw avx2 /proc/cpuinfo || { echo "this CPU has no AVX2; keeping the prebuilt binary" >&2; exit 1; }
# node-gyp ships inside npm; fall back to the registry's copy.
gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
if [ -f "$gyp" ]; then build=(node "$gyp"); else build=(npx --yes node-gyp); fi
# Headers of the running Node (the npm-registry and official builds ship them
# in include/node); N-API keeps the binary valid across Node versions.
nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
[ -f "$nodedir/include/node/node_api.h" ] || nodedir=/usr
(cd "$dir" && CFLAGS="-O3 -mavx2" "${build[@]}" rebuild --nodedir="$nodedir" --loglevel=warn >/dev/null)
echo "built $dir/build/Release/argon2.node with AVX2"
