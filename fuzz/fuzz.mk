# fuzz/fuzz.mk - libFuzzer harnesses for smtpd (clang; ASan + UBSan).
#
#   make -f fuzz/fuzz.mk fuzz [FUZZTIME=60]  build, then fuzz every target
#                                            FUZZTIME s on a copy of its corpus
#   make -f fuzz/fuzz.mk fuzz-regress        run fuzz/regress/<t>/* and the
#                                            seed corpus once through each target
#   make -f fuzz/fuzz.mk fuzz-build          only build fuzz/build/fuzz_<t>
#
# Also meant to be included from the top Makefile: paths are relative to
# the repository root and every name here starts with FUZZ_ or fuzz.
# The product sources (not main.c) are compiled again into fuzz/build/obj
# with coverage and sanitizers, and archived, so a harness links only the
# objects it needs.  Logs, corpus copies and crash inputs: fuzz/build/.

FUZZTIME	?= 60
FUZZ_CC		?= clang
FUZZ_TARGETS	:= rfc822 proxy session envelope config aliases lmtp tlsvars escape milter policy dnsbl \
		   ticket
FUZZ_PRODUCT	:= smtpd data replies rfc822 queue maildir storage config deliver \
		   users log logline supervisor worker proc peer proxy aliases quota lmtp \
		   resolve route starttls tlsspawn tls/ticket spooldir conn filter filter_proto milter policy \
		   netaddr dns dnsbl door rate
FUZZ_B		:= fuzz/build
FUZZ_CFLAGS	:= -g -O1 -std=c99 -D_GNU_SOURCE -I. -fno-sanitize-recover=undefined
FUZZ_SAN	:= address,undefined
FUZZ_OBJS	:= $(FUZZ_PRODUCT:%=$(FUZZ_B)/obj/%.o) $(FUZZ_B)/obj/fuzz-common.o
FUZZ_BINS	:= $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz_%)
FUZZ_LDFLAGS_session := -Wl,--wrap=read	# reads in pieces: fuzz_session.c

FUZZ_GOAL	:= $(.DEFAULT_GOAL)

fuzz-build: $(FUZZ_BINS)

$(FUZZ_B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -MMD -MP -c -o $@ $<

$(FUZZ_B)/obj/fuzz-common.o: fuzz/common.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -MMD -MP -c -o $@ $<

$(FUZZ_B)/libsmtpd.a: $(FUZZ_OBJS)
	rm -f $@
	ar rcs $@ $(FUZZ_OBJS)

$(FUZZ_B)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(FUZZ_B)/libsmtpd.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) $(FUZZ_LDFLAGS_$*) \
	    -o $@ $< $(FUZZ_B)/libsmtpd.a

fuzz: fuzz-build
	sh fuzz/run.sh fuzz $(FUZZTIME) $(FUZZ_TARGETS)

fuzz-regress: fuzz-build
	sh fuzz/run.sh regress 0 $(FUZZ_TARGETS)

fuzz-clean:
	rm -rf $(FUZZ_B)

.PHONY: fuzz-build fuzz fuzz-regress fuzz-clean
-include $(FUZZ_OBJS:.o=.d)

# standalone (make -f fuzz/fuzz.mk), "fuzz" is the default goal; included,
# the includer's stays (cleared here if we came first: its next target wins)
ifeq ($(firstword $(MAKEFILE_LIST)),fuzz/fuzz.mk)
.DEFAULT_GOAL	:= fuzz
else
.DEFAULT_GOAL	:= $(FUZZ_GOAL)
endif
