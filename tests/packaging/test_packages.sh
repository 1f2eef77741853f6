#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# tests/packaging/test_packages.sh [DEB_DIR]: the Debian packages of
# `make deb` (in DEB_DIR, default $top_builddir/deb, built when absent),
# checked by lintian and then installed, run, upgraded, removed and purged
# in a throwaway Debian 12 root: a debootstrap minbase chroot holding the
# packages' dependencies (cached in $LOGFERRY_CHROOT_CACHE, default
# /var/cache/logferry-test, so that only the first run downloads). The same
# steps as piuparts, plus starting both daemons as the packaged user
# without systemd, and with less time than piuparts' own chroots take.
# Needs root (chroot, mount, dpkg): exits 77 otherwise. Run by .ci/run.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir/build}"
: "${MOCK_KAFKA:=$top_builddir/tests/tools/mock_kafka}"
export top_srcdir top_builddir MOCK_KAFKA
srcdir=$top_srcdir
. "$top_srcdir/tests/integration/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: needs root (debootstrap, chroot, dpkg in the chroot)"
	exit 77
fi
for tool in debootstrap lintian dpkg-deb kcat; do
	command -v "$tool" >/dev/null || {
		echo "FAIL: $tool not found (packaging/install-deps.sh installs it)"
		exit 1
	}
done

DEBS=${1:-$top_builddir/deb}
CACHE=${LOGFERRY_CHROOT_CACHE:-/var/cache/logferry-test}
MIRROR=${LOGFERRY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$T/root

if ! compgen -G "$DEBS/logferry-agent_*.deb" >/dev/null; then
	echo "building the packages: make -C $top_builddir deb"
	make -C "$top_builddir" deb >"$T/deb.out" 2>&1 || {
		tail -n 40 "$T/deb.out"
		echo "FAIL: make deb"
		exit 1
	}
fi
[ -x "$MOCK_KAFKA" ] || make -C "$top_builddir" tests/tools/mock_kafka >/dev/null ||
	{ echo "FAIL: cannot build $MOCK_KAFKA"; exit 1; }

# in_root CMD...: CMD in the throwaway root, without a terminal, so that a
# question from a maintainer script or dpkg fails instead of waiting.
in_root() {
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		chroot "$ROOT" "$@" </dev/null
}

# as_logferry CMD...: CMD in the root as _logferry with its groups, as the
# units run the daemons. Every command here execs the next, so that
# `start NAME "${AS_LOGFERRY[@]}" CMD...` records the daemon's own PID.
AS_LOGFERRY=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$ROOT"
	setpriv --reuid=_logferry --regid=_logferry --init-groups)
as_logferry() {
	"${AS_LOGFERRY[@]}" "$@" </dev/null
}

# exec_start UNIT: the daemon's command line from the installed unit.
exec_start() {
	sed -n 's/^ExecStart=//p' "$ROOT/lib/systemd/system/$1.service"
}

# check WHAT CMD...: passes when CMD succeeds.
check() {
	local what=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then
		pass "$what"
	else
		fail "$what: $(tail -n 5 "$T/check.out")"
	fi
}

# owner_mode PATH: owner, group (the root's names) and mode of PATH in the root.
owner_mode() {
	in_root stat -c '%U:%G %a' "$1"
}

# expect_owner_mode PATH "OWNER:GROUP MODE"
expect_owner_mode() {
	local got
	got=$(owner_mode "$1")
	if [ "$got" = "$2" ]; then
		pass "$1 is $2"
	else
		fail "$1 is '$got', expected $2"
	fi
}

test_lintian_reports_no_error_or_warning() {
	local changes
	changes=$(ls "$DEBS"/logferry_*.changes | head -1)
	check "lintian --fail-on error,warning $(basename "$changes")" \
		lintian -i --fail-on error,warning "$changes"
}

# The root: Debian 12 minbase plus the packages' dependencies, cached by
# that list; each run unpacks a fresh copy.
make_root() {
	local deps key tarball
	deps=$(for deb in "$DEBS"/logferry-*_*.deb; do dpkg-deb -f "$deb" Depends; done |
		tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/ //g' |
		grep -v -e '^logferry-' -e '^$' | sort -u | tr '\n' ',')
	deps=${deps%,}
	key=$(echo "bookworm $deps" | sha256sum | cut -c1-16)
	tarball=$CACHE/bookworm-minbase-$key.tar
	if [ ! -f "$tarball" ]; then
		echo "debootstrap: Debian 12 minbase with $deps into $tarball (first run only)"
		mkdir -p "$CACHE" "$T/boot"
		if ! debootstrap --variant=minbase --include="$deps" bookworm "$T/boot" "$MIRROR" \
			>"$T/debootstrap.log" 2>&1; then
			tail -n 20 "$T/debootstrap.log"
			echo "FAIL: debootstrap (see above)"
			exit 1
		fi
		rm -rf "$T/boot/var/cache/apt/archives/"*.deb
		tar -C "$T/boot" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
		rm -rf "$T/boot"
	fi
	mkdir -p "$ROOT"
	tar -C "$ROOT" -xf "$tarball"
	mount -t proc proc "$ROOT/proc"
	# Lazily: detached even if busy, before lib.sh removes $T.
	LF_AFTER_STOP='umount -l "$ROOT/proc"'
	# As on a host with systemd, whose group the agent joins.
	in_root groupadd --system systemd-journal
	mkdir -p "$ROOT/tmp/debs" "$ROOT/tmp/debs2"
	cp "$DEBS"/logferry-common_*.deb "$DEBS"/logferry-agent_*.deb "$DEBS"/logferry-relay_*.deb \
		"$ROOT/tmp/debs/"
}

test_install_creates_user_directories_and_conffiles() {
	check "the three packages install" in_root sh -c 'dpkg -i /tmp/debs/*.deb'
	check "_logferry is a system user with home /var/lib/logferry" \
		test "$(in_root getent passwd _logferry | cut -d: -f6,7)" = /var/lib/logferry:/usr/sbin/nologin
	check "_logferry is in adm and systemd-journal" \
		sh -c "in_groups=\$(chroot '$ROOT' id -nG _logferry); echo \$in_groups; \
			echo \" \$in_groups \" | grep -q ' adm ' && echo \" \$in_groups \" | grep -q ' systemd-journal '"
	expect_owner_mode /etc/logferry "root:_logferry 750"
	expect_owner_mode /var/lib/logferry "_logferry:_logferry 750"
	check "agent.yaml and relay.yaml are conffiles" sh -c \
		"chroot '$ROOT' dpkg-query -W -f='\${Conffiles}\n' logferry-agent logferry-relay |
			grep -c -e '^ /etc/logferry/agent.yaml ' -e '^ /etc/logferry/relay.yaml ' | grep -qx 2"
	check "man pages installed" test -f "$ROOT/usr/share/man/man8/logferry-agent.8.gz" \
		-a -f "$ROOT/usr/share/man/man8/logferry-relay.8.gz" \
		-a -f "$ROOT/usr/share/man/man5/logferry.yaml.5.gz"
	check "the deployment guide and record format installed" \
		test -f "$ROOT/usr/share/doc/logferry-common/deployment.md.gz" \
		-a -f "$ROOT/usr/share/doc/logferry-common/record-format.md.gz"
	check "units installed in /lib/systemd/system" test -f "$ROOT/lib/systemd/system/logferry-agent.service" \
		-a -f "$ROOT/lib/systemd/system/logferry-relay.service"
}

# The packaged configurations are valid but for the certificates, which the
# administrator provides.
test_packaged_configs_want_only_the_certificates() {
	local d
	for d in agent relay; do
		as_logferry /usr/sbin/logferry-$d -c /etc/logferry/$d.yaml --check >"$T/check.out" 2>&1
		if [ $? -eq 2 ] && grep -q "cannot read '/etc/logferry/ca.crt'" "$T/check.out" &&
			! grep -v -e "cannot read '/etc/logferry/" -e 'configuration is not valid' "$T/check.out" |
				grep -q .; then
			pass "packaged $d.yaml: --check as _logferry asks only for the certificates"
		else
			fail "packaged $d.yaml --check: $(cat "$T/check.out")"
		fi
	done
}

# Certificates as the deployment guide has them, and the conffiles edited
# for this test's addresses: the edit the upgrade must keep.
configure_root() {
	local e=$ROOT/etc/logferry
	make_certs
	cp "$T/certs/ca.crt" "$e/ca.crt"
	cp "$T/certs/web-01-chain.crt" "$e/agent.crt"
	cp "$T/certs/relay-chain.crt" "$e/relay.crt"
	cp "$T/certs/web-01.key" "$e/agent.key"
	cp "$T/certs/relay.key" "$e/relay.key"
	in_root chown root:_logferry /etc/logferry/agent.key /etc/logferry/relay.key
	chmod 0640 "$e/agent.key" "$e/relay.key"
	chmod 0644 "$e/ca.crt" "$e/agent.crt" "$e/relay.crt"
	rport=$(free_port)
	sed -i -e 's|^# id: web-01 |id: web-01   |' \
		-e "s|servers: \[.*\]|servers: [$LF_IP:$rport]|" \
		-e "s|127\\.0\\.0\\.1:5514|$LF_IP:$(free_port)|g" \
		-e "s|127\\.0\\.0\\.1:8540|$LF_IP:$(free_port)|g" \
		-e "s|127\\.0\\.0\\.1:9540|$LF_IP:$(free_port)|g" \
		-e '1i # edited by test_packages.sh' "$e/agent.yaml"
	sed -i -e "s|0\\.0\\.0\\.0:7540|$LF_IP:$rport|" \
		-e "s|brokers: .*|brokers: \"$KAFKA_BOOT\"|" \
		-e "s|127\\.0\\.0\\.1:9541|$LF_IP:$(free_port)|g" \
		-e '1i # edited by test_packages.sh' "$e/relay.yaml"
	# What NGINX's package makes: its logs readable by group adm only.
	mkdir -p "$ROOT/var/log/nginx"
	: >"$ROOT/var/log/nginx/access.log"
	: >"$ROOT/var/log/nginx/error.log"
	in_root chown -R root:adm /var/log/nginx
	chmod 0750 "$ROOT/var/log/nginx"
	chmod 0640 "$ROOT/var/log/nginx/access.log" "$ROOT/var/log/nginx/error.log"
	# systemd's RuntimeDirectory=logferry, for the syslog unix socket.
	install -d -m 0755 "$ROOT/run/logferry"
	in_root chown _logferry:_logferry /run/logferry
}

# Both daemons as the units start them, as _logferry: an NGINX line readable
# only through the adm group reaches Kafka over mutual TLS.
test_daemons_run_as_logferry_and_deliver() {
	local d relay agent
	for d in agent relay; do
		check "$d.yaml with certificates: --check as _logferry" \
			as_logferry /usr/sbin/logferry-$d -c /etc/logferry/$d.yaml --check
	done
	check "another user cannot read the relay's key" \
		sh -c "! chroot '$ROOT' setpriv --reuid=nobody --regid=nogroup --clear-groups \
			cat /etc/logferry/relay.key"
	kafka_topic logs.nginx_access 1
	# shellcheck disable=SC2046
	start relay "${AS_LOGFERRY[@]}" $(exec_start logferry-relay)
	relay=$LF_PID
	wait_log "$T/relay.log" "listening on" 60 || fail "relay did not start: $(tail -3 "$T/relay.log")"
	# shellcheck disable=SC2046
	start agent "${AS_LOGFERRY[@]}" $(exec_start logferry-agent)
	agent=$LF_PID
	nginx_lines "$ROOT/var/log/nginx/access.log" 20 1
	expect_delivered logs.nginx_access "$ROOT/var/log/nginx/access.log" 90 \
		"the packaged agent and relay, as _logferry, deliver 20 NGINX lines"
	check "the agent runs as _logferry, in groups adm and systemd-journal" \
		test "$(awk '/^Uid:/ { print $2 } /^Groups:/ { $1 = ""; print }' "/proc/$agent/status" |
			tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')" = \
		"$(in_root sh -c 'id -u _logferry; getent group adm systemd-journal _logferry | cut -d: -f3' |
			sort -n | tr '\n' ' ')"
	check "the spool is in /var/lib/logferry/agent" test -d "$ROOT/var/lib/logferry/agent/spool"
	for d in agent relay; do
		local pid=${!d}
		kill -TERM "$pid"
		if wait_exit "$pid" 60 && [ "$LF_RC" = 0 ]; then
			pass "$d stops cleanly on SIGTERM"
		else
			fail "$d did not stop cleanly (${LF_RC:-still running}): $(tail -3 "$T/$d.log")"
		fi
	done
}

# A second version of each package, the same files (the conffiles unchanged,
# as in most upgrades) under version OLD+test1.
repack() {
	local deb old new x
	for deb in "$ROOT"/tmp/debs/*.deb; do
		x=$T/repack
		rm -rf "$x"
		dpkg-deb -R "$deb" "$x"
		old=$(dpkg-deb -f "$deb" Version)
		new=$old+test1
		sed -i -e "s/^Version: .*/Version: $new/" -e "s/(= $old)/(= $new)/g" "$x/DEBIAN/control"
		dpkg-deb -b "$x" "$ROOT/tmp/debs2/" >/dev/null
	done
	NEW_VERSION=$new
}

test_upgrade_keeps_the_edited_conffiles() {
	repack
	check "the packages upgrade to $NEW_VERSION without a question" \
		in_root sh -c 'dpkg -i /tmp/debs2/*.deb'
	check "logferry-agent is $NEW_VERSION" \
		test "$(in_root dpkg-query -W -f='${Version}' logferry-agent)" = "$NEW_VERSION"
	check "the upgrade kept the edited agent.yaml and relay.yaml" \
		grep -q '^# edited by test_packages.sh' "$ROOT/etc/logferry/agent.yaml" "$ROOT/etc/logferry/relay.yaml"
	check "the edited agent.yaml is still valid after the upgrade" \
		as_logferry /usr/sbin/logferry-agent -c /etc/logferry/agent.yaml --check
	expect_owner_mode /etc/logferry/relay.key "root:_logferry 640"
	expect_owner_mode /etc/logferry "root:_logferry 750"
}

test_remove_keeps_spool_and_configuration() {
	check "the packages remove" in_root dpkg -r logferry-agent logferry-relay logferry-common
	check "remove took the daemons" test ! -e "$ROOT/usr/sbin/logferry-agent" -a ! -e "$ROOT/usr/sbin/logferry-relay"
	check "remove kept the spool" test -d "$ROOT/var/lib/logferry/agent/spool"
	check "remove kept the configuration" test -f "$ROOT/etc/logferry/agent.yaml" -a -f "$ROOT/etc/logferry/relay.yaml"
}

test_purge_removes_spool_and_configuration() {
	check "the packages purge without a question" \
		in_root dpkg -P logferry-agent logferry-relay logferry-common
	check "purge removed /var/lib/logferry" test ! -e "$ROOT/var/lib/logferry"
	check "purge removed agent.yaml and relay.yaml" \
		test ! -e "$ROOT/etc/logferry/agent.yaml" -a ! -e "$ROOT/etc/logferry/relay.yaml"
	check "purge took _logferry out of adm and systemd-journal" \
		sh -c "! chroot '$ROOT' id -nG _logferry | grep -qw -e adm -e systemd-journal"
	check "nothing of the packages is left in dpkg's database" \
		sh -c "! chroot '$ROOT' dpkg -l 'logferry-*' 2>/dev/null | grep -q '^[a-z][a-z] '"
}

test_lintian_reports_no_error_or_warning
make_root
start_kafka
test_install_creates_user_directories_and_conffiles
test_packaged_configs_want_only_the_certificates
configure_root
test_daemons_run_as_logferry_and_deliver
test_upgrade_keeps_the_edited_conffiles
test_remove_keeps_spool_and_configuration
test_purge_removes_spool_and_configuration
finish
