#!/bin/sh
# demo.sh - "make demo": smtpd on 127.0.0.1:PORT for whoever runs it, root
# included, delivering into DIR/Maildir through a virtual-users file.
#   usage: demo.sh SMTPD DIR [PORT]
# Root is never a recipient and never writes a mailbox, so when root runs
# the demo the mailbox belongs to the session account instead; an ordinary
# user's demo delivers as that user.  Nothing outside DIR is touched.
set -eu
smtpd=$1 dir=$2 port=${3:-2525}
user=$(id -un)
sess=nobody
if [ "$(id -u)" -eq 0 ]; then
	for u in smtpd nobody; do
		if id -u "$u" >/dev/null 2>&1; then sess=$u; break; fi
	done
	owner="$(id -u "$sess"):$(id -g "$sess")"
else
	owner="$(id -u):$(id -g)"
fi
mkdir -p "$dir/Maildir/tmp" "$dir/Maildir/new" "$dir/Maildir/cur" "$dir/queue"
printf '%s:%s:%s\n' "$user" "$owner" "$dir/Maildir" >"$dir/users"
chmod 644 "$dir/users"
if [ "$(id -u)" -eq 0 ]; then
	chown -R "$owner" "$dir/Maildir"
	chmod 755 "$dir"
fi
echo "smtpd: 127.0.0.1:$port -> $dir/Maildir (mail for $user@localhost); Ctrl-C stops it"
exec "$smtpd" -e -o workers=2 -o session_user="$sess" -o virtual_users="$dir/users" \
	-o postmaster="$user" -o spool_dir="$dir/queue" -l "127.0.0.1:$port"
