#!/bin/sh
# render_bench.sh: messages/s that templates/ renders on one core, from a
# ~20 KB multipart (text + html) template with 10 variables and a 5-item
# section, every recipient's data different: without DKIM, with Ed25519 and
# with RSA-2048, beside `openssl speed` for the same algorithms. Prints the
# figures; asserts nothing. The render figures leave out the formatting of
# each recipient's row by the bench's own data source, printed beside them
# with it counted in.
#
# usage: bench/render_bench.sh [BUILD_DIR] [N]
#   N       recipients without DKIM (default 1000000)
#   N_ED    recipients signed with Ed25519 (default N / 20)
#   N_RSA   recipients signed with RSA-2048 (default N / 200): signing is
#           the cost there, and these counts keep each run to seconds
set -eu

BUILD=${1:-build}
N=${2:-1000000}
N_ED=${N_ED:-$((N / 20))}
N_RSA=${N_RSA:-$((N / 200))}
BENCH="$BUILD/bench/render-bench"
VOLLEY="$BUILD/volley"
[ -x "$BENCH" ] && [ -x "$VOLLEY" ] || { echo "build first: ninja -C $BUILD" >&2; exit 1; }

WORK=$(mktemp -d /tmp/volley-render-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PIN=""
command -v taskset >/dev/null 2>&1 && PIN="taskset -c 0"

# The template: ten variables in the header and the parts, the items
# section in both parts, and static text filling the html part to ~20 KB.
T="$WORK/bench.tmpl"
{
	printf 'From: "{{sender_name}}" <offers@example.test>\n'
	printf 'To: {{name}} <{{email}}>\n'
	printf 'Subject: {{subject}}, {{first}}\n'
	printf 'List-Id: <offers.example.test>\n\n'
	printf -- '--- text\nHello {{first}} {{last}},\n\n'
	printf 'Here are this week'"'"'s offers for {{company}} in {{city}}:\n\n'
	printf '{{#items}}\n* {{title}} for {{price}}: {{url}}\n{{/items}}\n\n'
	printf 'Your balance is {{amount}}. Your code: {{code}}.\n\n'
	i=0
	while [ $i -lt 30 ]; do
		printf 'Paragraph %d of the plain text version, which says the same as the html one in fewer words.\n' $i
		i=$((i + 1))
	done
	printf -- '--- html\n<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{{subject}}</title></head>\n'
	printf '<body style="font-family: sans-serif">\n<p>Hello {{first}} {{last}},</p>\n'
	printf '<p>Here are this week'"'"'s offers for {{company}} in {{city}}:</p>\n<table>\n'
	printf '{{#items}}\n<tr><td><a href="{{url}}">{{title}}</a></td><td>{{price}}</td></tr>\n{{/items}}\n</table>\n'
	printf '<p>Your balance is <b>{{amount}}</b>. Your code: <code>{{code}}</code>.</p>\n'
	i=0
	while [ $i -lt 150 ]; do
		printf '<p style="margin:0 0 8px 0;color:#333">Static paragraph %d of the newsletter body, as long as a real one.</p>\n' $i
		i=$((i + 1))
	done
	printf '<p>Sent to {{email}}.</p>\n</body></html>\n'
} > "$T"

"$VOLLEY" dkim-keygen --domain example.test --selector ed --type ed25519 --out "$WORK/ed.pem" >/dev/null
"$VOLLEY" dkim-keygen --domain example.test --selector rsa --type rsa --bits 2048 --out "$WORK/rsa.pem" >/dev/null

rate() { sed -n 's/.* msgs_per_s=\([0-9.]*\).*/\1/p'; }
rows_rate() { sed -n 's/.*with_rows_msgs_per_s=\([0-9.]*\).*/\1/p'; }

echo "template: $(wc -c < "$T") bytes; one core ($PIN)"
plain_out=$($PIN "$BENCH" "$T" "$N")
plain=$(printf '%s\n' "$plain_out" | rate)
plain_rows=$(printf '%s\n' "$plain_out" | rows_rate)
ed=$($PIN "$BENCH" "$T" "$N_ED" "$WORK/ed.pem" example.test ed | rate)
rsa=$($PIN "$BENCH" "$T" "$N_RSA" "$WORK/rsa.pem" example.test rsa | rate)

SPEED=$($PIN openssl speed -seconds 3 rsa2048 ed25519 2>/dev/null)
ossl_rsa=$(printf '%s\n' "$SPEED" | awk '/^rsa 2048 bits/ { print $(NF-1) }')
ossl_ed=$(printf '%s\n' "$SPEED" | awk '/Ed25519/ && /bits/ { print $(NF-1) }')

echo
printf '%-28s %14s %16s %8s\n' "" "volley msgs/s" "openssl sign/s" "ratio"
printf '%-28s %14.0f %16s %8s\n' "render, no DKIM ($N)" "$plain" "-" "-"
printf '%-28s %14.0f %16s %8s\n' "  the same, rows formatted" "$plain_rows" "-" "-"
awk -v v="$ed" -v o="$ossl_ed" -v n="$N_ED" 'BEGIN { printf "%-28s %14.0f %16.0f %7.0f%%\n", "render + Ed25519 (" n ")", v, o, (o > 0 ? 100 * v / o : 0) }'
awk -v v="$rsa" -v o="$ossl_rsa" -v n="$N_RSA" 'BEGIN { printf "%-28s %14.0f %16.0f %7.0f%%\n", "render + RSA-2048 (" n ")", v, o, (o > 0 ? 100 * v / o : 0) }'
echo "targets: >= 500000 msgs/s without DKIM; DKIM at >= 80% of openssl's signatures/s"
