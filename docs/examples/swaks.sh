#!/bin/sh
# swaks.sh - mxd as a throw-away server for swaks: greylisted, then taken.
#
#   MXD=build/server/mxd docs/examples/swaks.sh
#
# Starts mxd on a free port, capturing into a temporary directory, with a
# fault that refuses the first MAIL with 451; sends with swaks twice (the
# first is refused, the second delivered), shows the capture's JSON and
# stops mxd.  Exits non-zero if anything is not as expected: the test
# suite runs it (tests/integration/meson.build).

set -eu

MXD=${MXD:-mxd}
dir=$(mktemp -d)
pid=

fail() {
	echo "swaks.sh: $*" >&2
	[ ! -s "$dir/mxd.log" ] || sed 's/^/mxd: /' "$dir/mxd.log" >&2
	exit 1
}
cleanup() {
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || :
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# mxd makes its self-signed certificate in its data_dir, "."; hence the cd.
cd "$dir"
"$MXD" --listen 127.0.0.1:0 --capture "$dir/capture" \
	--fault 'mail first 1 reply 451 4.7.1 Greylisted' \
	>"$dir/stdout" 2>"$dir/mxd.log" &
pid=$!

# Wait, at most 10 s, for its first line, "listening 127.0.0.1:PORT".
# wc -l counts only whole lines.
tries=0
until [ "$(wc -l <"$dir/stdout")" -ge 1 ]; do
	kill -0 "$pid" 2>/dev/null || fail "mxd exited at start"
	tries=$((tries + 1))
	[ "$tries" -le 100 ] || fail "mxd did not start in 10 s"
	sleep 0.1
done
read -r word addr <"$dir/stdout"
[ "$word" = listening ] || fail "unexpected first line: $word $addr"
port=${addr##*:}

send() {
	swaks --server 127.0.0.1 --port "$port" --helo client.test \
		--from alice@client.test --to bob@example.test \
		--header 'Subject: swaks example' --body 'Hello from swaks.'
}

# First attempt: MAIL is refused; swaks exits 23 (error in MAIL).
rc=0
out=$(send 2>&1) || rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 23 ] || fail "first swaks exited $rc, not 23"
printf '%s\n' "$out" | grep -q '^<\*\* 451 4\.7\.1 Greylisted$' ||
	fail "no 451 for the first MAIL"

# Second attempt: delivered.
rc=0
out=$(send 2>&1) || rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 0 ] || fail "second swaks exited $rc"
id=$(printf '%s\n' "$out" | sed -n 's/^<-  250 2\.0\.0 Ok: queued as //p')
[ -n "$id" ] || fail "no 250 for the message"

# The capture: ID.eml as sent, ID.json with the envelope, one line.
[ "$(ls "$dir/capture")" = "$(printf '%s\n' "$id.eml" "$id.json")" ] ||
	fail "capture holds: $(ls "$dir/capture")"
json=$(cat "$dir/capture/$id.json")
echo "$id.json: $json"
for field in '"mail_from":"alice@client.test","rcpt_to":["bob@example.test"]' \
		'"helo":"client.test"' '"tls":null' '"connection":{"number":2,'; do
	case $json in
	*"$field"*) ;;
	*) fail "$id.json lacks $field" ;;
	esac
done
grep -q '^Subject: swaks example' "$dir/capture/$id.eml" ||
	fail "$id.eml lacks the Subject"

# SIGTERM: mxd drains, logs its stop line and exits 0.
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || fail "mxd exited $rc after SIGTERM"
grep -q ' stop .* faults=1$' "$dir/mxd.log" || fail "no stop line, faults=1"
echo "swaks.sh: ok"
