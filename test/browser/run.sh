#!/usr/bin/env bash
# Browser test of the viewer page: builds onaird, starts it on the test
# sources on a free port with a throw-away data directory, and lets headless
# Chromium (Debian's, driven by playwright-core) play it. Installs chromium
# and the node dependencies when they are missing. Exits with the test's status.
#
#   test/browser/run.sh             from anywhere
#   ONAIRD=path/to/onaird run.sh    test a daemon built elsewhere (no build)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PATH="$PATH:/usr/local/go/bin"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

say() { printf '==> %s\n' "$*" >&2; }

# --- what the test needs: chromium (never a downloaded browser), node, npm ---
if [[ ! -x "$CHROMIUM" ]] || ! command -v curl >/dev/null; then
	say "installing Debian's chromium and curl"
	"$root/scripts/apt-ensure.sh" chromium curl
fi
# playwright-core needs node 20 or newer (Debian 12's own nodejs is 18).
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if ! command -v npm >/dev/null || [[ "$node_major" -lt 20 ]]; then
	say "node 20 or newer and npm are needed (found node major version $node_major)"
	exit 1
fi

# npm ci when node_modules is missing or older than the lock file.
stamp="$here/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$here/package-lock.json" -nt "$stamp" || "$here/package.json" -nt "$stamp" ]]; then
	say "npm ci in test/browser"
	(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/onair-browser.XXXXXX")"
daemon_pid=""
cleanup() {
	if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill "$daemon_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the daemon, built into the temp dir: web/static is embedded, so this
# tests the page as it is in the tree, and a concurrent `make build` of
# bin/onaird cannot swap the binary mid-test ---
if [[ -n "${ONAIRD:-}" ]]; then
	cp "$ONAIRD" "$work/onaird"
else
	say "building onaird"
	if ! (cd "$root" && go build -trimpath -o "$work/onaird" ./cmd/onaird); then
		say "go build failed (the cgo packages come with: make -C $root deps-build)"
		exit 1
	fi
fi

cat >"$work/onair.yaml" <<'EOF'
video: {source: test, width: 1280, height: 720}
audio: {source: test}
webrtc: {udp_port: 0}
EOF

free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

token="browser-test-$RANDOM$RANDOM"
started=""
for attempt in 1 2 3; do
	port="$(free_port)"
	"$work/onaird" --config "$work/onair.yaml" --data-dir "$work/data" \
		--listen "127.0.0.1:$port" --admin-token "$token" >"$work/onaird.log" 2>&1 &
	daemon_pid=$!
	# Healthy means serving HTTP with the media pipeline encoding pictures.
	for _ in $(seq 200); do
		if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
			started=yes
			break
		fi
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.1
	done
	[[ -n "$started" ]] && break
	if kill -0 "$daemon_pid" 2>/dev/null; then
		say "onaird runs but is not healthy after 20 s: $(curl -sS "http://127.0.0.1:$port/healthz" 2>&1 || true)"
		sed 's/^/    /' "$work/onaird.log" >&2
		exit 1
	fi
	# It exited: most likely another process took the port between the
	# check and the bind. A new port, at most three times.
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=""
	say "onaird exited on port $port (attempt $attempt):"
	sed 's/^/    /' "$work/onaird.log" >&2
done
[[ -n "$started" ]] || { say "onaird does not start"; exit 1; }
say "onaird on http://127.0.0.1:$port (pid $daemon_pid)"

status=0
(
	cd "$here"
	ONAIR_URL="http://127.0.0.1:$port" ONAIR_TOKEN="$token" \
		ONAIR_ARTIFACTS="$root/test-artifacts" CHROMIUM="$CHROMIUM" \
		timeout --kill-after=10 400 node --test --test-concurrency=1 --test-reporter=spec viewer.test.mjs audience.test.mjs replay.test.mjs whip-receiver.test.mjs
) || status=$?

if [[ $status -ne 0 ]]; then
	say "test failed; the daemon's log:"
	sed 's/^/    /' "$work/onaird.log" >&2
fi
exit "$status"
