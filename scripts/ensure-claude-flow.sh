#!/usr/bin/env bash
# Install the pinned claude-flow CLI once into a cache folder outside the clone and print the path
# of its executable (the last line of stdout). Reused when present. The claude-flow test calls this:
# it never skips; without node/npm it fails with a clear message.
# A fresh install takes about 5 minutes of CPU (native modules): run it with `nice -n 10`.
set -euo pipefail
VERSION=${CLAUDE_FLOW_VERSION:-3.43.0}
CACHE=${ML_EXPERT_CLAUDE_FLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ml-expert/claude-flow-$VERSION}
BIN="$CACHE/node_modules/.bin/claude-flow"
if [ -x "$BIN" ] && [ -f "$CACHE/.complete" ]; then echo "$BIN"; exit 0; fi
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "claude-flow: '$tool' is not on PATH; install Node.js 20+ (it ships npm) to install claude-flow@$VERSION" >&2
    exit 1
  fi
done
mkdir -p "$CACHE"
echo "claude-flow: installing claude-flow@$VERSION into $CACHE (about 5 min of CPU, once)" >&2
# A lock, so two tests (or a test and a person) never install into the same folder at once.
exec 9>"$CACHE/.lock"
flock 9
if [ -x "$BIN" ] && [ -f "$CACHE/.complete" ]; then echo "$BIN"; exit 0; fi
npm install --no-audit --no-fund --loglevel=error --prefix "$CACHE" "claude-flow@$VERSION" >&2
if [ ! -x "$BIN" ]; then
  echo "claude-flow: npm finished but $BIN is missing" >&2
  exit 1
fi
touch "$CACHE/.complete"
echo "$BIN"
