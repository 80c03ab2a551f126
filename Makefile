# smtpd - build, test, install.  Plain make, -MMD dependencies.
CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c99 -D_GNU_SOURCE -Wall -Wextra
PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin

OBJS = smtpd.o rfc822.o queue.o maildir.o config.o deliver.o users.o log.o \
       supervisor.o proxy.o
TESTS = tests/check_rfc822 tests/check_maildir tests/check_queue tests/check_smtpd
CHECK_LIBS = $(shell pkg-config --cflags --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)

all: smtpd

smtpd: main.o $(OBJS)
	$(CC) $(LDFLAGS) -o $@ main.o $(OBJS)

%.o: %.c
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

tests/check_%: tests/check_%.c $(OBJS)
	$(CC) $(CFLAGS) -I. -o $@ $< $(OBJS) $(CHECK_LIBS)

unit: $(TESTS)
	@for t in $(TESTS); do ./$$t || exit 1; done

e2e: smtpd
	python3 tests/e2e/run.py ./smtpd

check: unit e2e

demo: smtpd
	@echo "smtpd: 127.0.0.1:2525 -> $$HOME/Maildir (as $$(id -un)); Ctrl-C stops it"
	./smtpd -e -o workers=2 -l 127.0.0.1:2525

install: smtpd
	install -d $(DESTDIR)$(SBINDIR)
	install -m 755 smtpd $(DESTDIR)$(SBINDIR)/smtpd

clean:
	rm -f smtpd *.o *.d $(TESTS) tests/*.o tests/*.d tests/faultfs.so

.PHONY: all unit e2e check demo install clean
-include *.d
