#!/bin/sh
# install-deps.sh - install what smtpd's build, tests and benchmarks need
# (Debian 12).  With no arguments: everything `make check` needs (PKGS);
# with arguments: just those packages (bench/install-deps.sh passes its own).
# Idempotent: nothing happens when every package is installed; apt-get
# update runs only when a package is unknown or the lists are missing.
# Packages must not leave system daemons running (the tests start their own
# instances): a temporary policy-rc.d (exit 101) keeps invoke-rc.d from
# starting them, debconf is told "No configuration" for Postfix, and a
# system Postfix that the install started anyway is stopped.
set -eu

PKGS="build-essential gcc make pkg-config check python3 curl swaks dovecot-imapd clang libclang-rt-14-dev systemd ucspi-tcp xinetd haproxy procps python3-pytest dovecot-lmtpd dovecot-sieve passwd mandoc debhelper dpkg-dev fakeroot adduser libtls-dev openssl postfix rspamd clamav-daemon clamav-milter opendkim opendkim-tools postgrey dovecot-core strace dnsmasq fail2ban"
if [ $# -gt 0 ]; then
	PKGS="$*"
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# smtpd's session runs as its own account (never "nobody", which other
# daemons share), the TLS engine as another (tls_user, smtpd-tls); the
# tests run as root and expect both to exist.
make_account() {
	for a in smtpd smtpd-tls; do
		if [ "$(id -u)" -eq 0 ] && ! getent passwd "$a" >/dev/null; then
			useradd --system --no-create-home --home-dir /nonexistent \
			    --shell /usr/sbin/nologin "$a"
		fi
	done
}

missing=""
for p in $PKGS; do
	installed "$p" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	make_account
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "install-deps: need root or sudo to install:$missing" >&2
	exit 1
fi
echo "install-deps: installing:$missing"

# policy-rc.d exit 101 = "action forbidden": package scripts start nothing.
# Put ours in place only if there is none, and remove only ours.
POLICY=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$POLICY" ]; then
	printf '#!/bin/sh\n# temporary, from smtpd bench/install-deps.sh\nexit 101\n' |
		$SUDO tee "$POLICY" >/dev/null
	$SUDO chmod 755 "$POLICY"
	ours=1
fi
cleanup() { if [ -n "$ours" ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

export DEBIAN_FRONTEND=noninteractive
case " $missing " in
*" postfix "*)
	# no /etc/postfix/main.cf, no mail name questions, no service
	printf 'postfix postfix/main_mailer_type select No configuration\n' |
		$SUDO debconf-set-selections
	;;
esac

need_update=""
for p in $missing; do
	apt-cache show "$p" >/dev/null 2>&1 || need_update=1
done
if [ -n "$need_update" ] || [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial)" ]; then
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
fi
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	--no-install-recommends -o Dpkg::Options::=--force-confdef \
	-o Dpkg::Options::=--force-confold $missing || {
	echo "install-deps: apt-get reported an error; checking" >&2
	$SUDO env DEBIAN_FRONTEND=noninteractive dpkg --configure -a || true
}

bad=""
for p in $PKGS; do
	installed "$p" || bad="$bad $p"
done
if [ -n "$bad" ]; then
	echo "install-deps: not installed:$bad" >&2
	exit 1
fi

# A booted systemd may have started the system Postfix despite the policy:
# stop it if we are the ones who installed it.
case " $missing " in
*" postfix "*)
	if [ -s /var/spool/postfix/pid/master.pid ] &&
		kill -0 "$(tr -dc 0-9 </var/spool/postfix/pid/master.pid)" 2>/dev/null; then
		echo "install-deps: stopping the system Postfix the install started" >&2
		$SUDO postfix stop >/dev/null 2>&1 || true
	fi
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now postfix >/dev/null 2>&1 || true
	fi
	;;
esac
make_account
echo "install-deps: done"
exit 0
