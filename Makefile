# smtpd - build, test, install.  Plain make, -MMD dependencies.
#   make            the program          make check      every test suite
#   make unit       Check unit tests     make e2e        end-to-end, real clients
#   make launch     launchers, supervisor, PROXY          make robust   crashes, hostile clients
#   make door       DNSBL, pregreet, rates, slow clients, fail2ban (pytest, dnsmasq)
#   make filter     milter and policy clients with real rspamd, ClamAV, postgrey, Dovecot
#   make check-asan the suites against an ASan/UBSan build (in build-asan/)
#   make fuzz       libFuzzer targets, FUZZTIME seconds each
#   make e2e PYTEST_ARGS="-k bdat"   a subset of a pytest suite (SMTPD=path: the binary)
#   make tls        STARTTLS: the smtpd-tls engine with real clients (pytest)
CC      ?= cc
CFLAGS  ?= -O2 -g
XCFLAGS  = -std=c99 -D_GNU_SOURCE -Wall -Wextra $(CFLAGS)
PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
B       ?= .

SRCS = smtpd.c data.c replies.c rfc822.c queue.c maildir.c storage.c config.c \
       deliver.c users.c log.c logline.c supervisor.c worker.c proc.c peer.c proxy.c \
       aliases.c quota.c lmtp.c resolve.c route.c \
       starttls.c tlsspawn.c tls/ticket.c spooldir.c \
       conn.c filter.c filter_proto.c milter.c policy.c \
       netaddr.c dns.c dnsbl.c door.c rate.c board.c
OBJS = $(SRCS:%.c=$(B)/%.o)
TESTS = $(B)/tests/check_rfc822 $(B)/tests/check_data $(B)/tests/check_maildir $(B)/tests/check_queue \
        $(B)/tests/check_smtpd $(B)/tests/check_aliases $(B)/tests/check_quota \
        $(B)/tests/check_lmtp $(B)/tests/check_conn $(B)/tests/check_starttls \
        $(B)/tests/check_harden $(B)/tests/check_filter \
        $(B)/tests/check_door $(B)/tests/check_board
CHECK_LIBS = $(shell pkg-config --cflags --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)
# pytest from Debian's python3-pytest (a pyenv python3 earlier in PATH may lack it);
# the binary under test is $(B)/smtpd; PYTEST_ARGS='-k bdat' runs a subset
PYTHON  ?= $(shell [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)
PYTEST   = SMTPD=$(abspath $(B)/smtpd) $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# smtpd-tls, the TLS engine, links libtls (libtls-dev); smtpd itself libc only.
TLS_OK   := $(shell pkg-config --exists libtls 2>/dev/null && echo yes)
TLS_LIBS := $(shell pkg-config --libs libtls 2>/dev/null)
ENGINE   := $(if $(TLS_OK),$(B)/smtpd-tls,tls-missing)
ENGINE_OBJS = $(B)/tls/smtpd-tls.o $(B)/tls/relay.o $(B)/tls/keys.o $(B)/tls/ticketcb.o
ENGINE_PURE = $(B)/tls/ticket.o	# shared with smtpd (tlsspawn.c): libc only

all: $(B)/smtpd $(ENGINE)

$(B)/smtpd: $(B)/main.o $(OBJS)
	$(CC) $(XCFLAGS) $(LDFLAGS) -o $@ $(B)/main.o $(OBJS)

# the engine's log lines go out through smtpd's own logline.c
$(B)/smtpd-tls: $(ENGINE_OBJS) $(ENGINE_PURE) $(B)/logline.o
	$(CC) $(XCFLAGS) $(LDFLAGS) -o $@ $(ENGINE_OBJS) $(ENGINE_PURE) $(B)/logline.o $(TLS_LIBS)

$(ENGINE_OBJS): XCFLAGS += $(shell pkg-config --cflags libtls 2>/dev/null)
$(B)/config.o: XCFLAGS += -DTLS_ENGINE='"$(SBINDIR)/smtpd-tls"'

tls-missing:
	@echo "smtpd-tls NOT built: libtls not found (pkg-config libtls; Debian: libtls-dev)."
	@echo "smtpd works without it, but cannot offer STARTTLS."

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -MMD -MP -c -o $@ $<

# every Check suite links the shared fixture and main() (tests/check_common.c)
$(B)/tests/check_%: tests/check_%.c $(B)/tests/check_common.o $(OBJS)
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -I. -o $@ $< $(B)/tests/check_common.o $(OBJS) $(CHECK_LIBS)
.SECONDARY: $(B)/tests/check_common.o
$(B)/tests/check_common.o: XCFLAGS += -I.

unit: $(TESTS)
	@for t in $(TESTS); do ./$$t || exit 1; done

# the pytest suites that need only smtpd: tests/NAME
#   e2e, launch, robust      end-to-end; launchers, supervisor, PROXY; hostile clients
#   admin                    queue tools, log format, the demo
#   filter                   milter and policy clients against real rspamd, ClamAV,
#                            postgrey, Dovecot
#   door                     DNSBL (a real dnsmasq), pregreet, rates, fail2ban
#   route                    where mail goes: aliases, subaddresses, quota, LMTP to
#                            a real Dovecot (root)
SMTPD_SUITES = e2e launch robust admin filter door route
$(SMTPD_SUITES): $(B)/smtpd
	$(PYTEST) tests/$@

tls: $(B)/smtpd $(B)/smtpd-tls
	$(PYTEST) tests/tls --smtpd=$(B)/smtpd --engine=$(B)/smtpd-tls

# the audit's findings (issue 11): durability, injection, BDAT, privileges
harden: $(B)/smtpd
	cd tests/harden && SMTPD=$(abspath $(B)/smtpd) $(PYTEST) .

check: unit arrows e2e launch robust admin route tls harden filter door

ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=all
# robust without the memory tests, whose RSS figures mean nothing under ASan
check-asan:
	$(MAKE) B=build-asan CC=clang CFLAGS="$(ASAN_FLAGS)" unit e2e launch admin route harden filter door
	$(MAKE) B=build-asan CC=clang CFLAGS="$(ASAN_FLAGS)" PYTEST_ARGS='-m "not memory"' robust
	$(MAKE) B=build-asan CC=clang CFLAGS="$(ASAN_FLAGS)" tls

# the README's first command: for root and ordinary users alike
demo: $(B)/smtpd
	@sh etc/demo.sh $(B)/smtpd $(CURDIR)/demo 2525

# no two modules call each other in a circle (from the objects' symbols)
arrows: $(B)/smtpd $(ENGINE)
	python3 tests/arrows/check_arrows.py $(B)/main.o $(OBJS)
	$(if $(TLS_OK),python3 tests/arrows/check_arrows.py $(ENGINE_OBJS) $(ENGINE_PURE) $(B)/logline.o)

# install: the program, its man pages, and etc/ as examples (DESTDIR= works).
# docs-check: the man pages lint clean and name every setting and option.
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/smtpd
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)/examples/tls \
	    $(DESTDIR)$(DOCDIR)/examples/fail2ban/filter.d $(DESTDIR)$(DOCDIR)/examples/fail2ban/jail.d
	install -m 755 $(B)/smtpd $(DESTDIR)$(SBINDIR)/smtpd
	if [ -f $(B)/smtpd-tls ]; then install -m 755 $(B)/smtpd-tls $(DESTDIR)$(SBINDIR)/smtpd-tls; fi
	install -m 644 man/smtpd.8 $(DESTDIR)$(MANDIR)/man8/smtpd.8
	install -m 644 man/smtpd.conf.5 $(DESTDIR)$(MANDIR)/man5/smtpd.conf.5
	if [ -f $(B)/smtpd-tls ]; then install -m 644 man/smtpd-tls.8 $(DESTDIR)$(MANDIR)/man8/smtpd-tls.8; fi
	install -m 644 $(filter-out etc/demo.sh etc/tls etc/fail2ban,$(wildcard etc/*)) $(DESTDIR)$(DOCDIR)/examples/
	install -m 644 $(wildcard etc/tls/*) $(DESTDIR)$(DOCDIR)/examples/tls/
	install -m 644 etc/fail2ban/filter.d/smtpd.conf $(DESTDIR)$(DOCDIR)/examples/fail2ban/filter.d/
	install -m 644 etc/fail2ban/jail.d/smtpd.conf $(DESTDIR)$(DOCDIR)/examples/fail2ban/jail.d/
	for a in smtpd smtpd-tls; do \
	    if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && ! getent passwd $$a >/dev/null; then \
	        useradd --system --no-create-home --home-dir /nonexistent \
	            --shell /usr/sbin/nologin $$a; fi; \
	done	# the session's and the TLS engine's own accounts (INSTALL)

docs-check: $(B)/smtpd
	$(PYTEST) tests/docs

# package-check: build the .deb, install it, deliver through it, purge it (root)
package-check:
	$(PYTEST) -rs tests/package

check: docs-check
.PHONY: docs-check package-check

clean:
	rm -rf smtpd smtpd-tls tls/*.o tls/*.d *.o *.d tests/check_rfc822 tests/check_maildir tests/check_queue \
	    tests/check_smtpd tests/check_data tests/check_filter tests/check_aliases tests/check_quota \
	    tests/check_lmtp tests/check_conn tests/check_starttls tests/check_harden tests/check_door tests/check_board tests/*.o tests/*.d tests/faultfs.so build-asan demo

.PHONY: all unit arrows admin route tls tls-missing filter e2e launch robust door check check-asan demo install clean
-include $(B)/*.d $(B)/tests/*.d $(B)/tls/*.d
-include fuzz/fuzz.mk
