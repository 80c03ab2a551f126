/*
 * fuzz/fuzz_proxy.c - the PROXY protocol: proxy_v1_parse and
 * proxy_v2_parse on the raw input (in a heap block of exactly its size,
 * so an over-read shows), with a roomy and a tiny address buffer, and
 * proxy_read on the input sent through a socket pair.
 * Check: an address written is NUL-ended text that inet_pton accepts.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "proxy.h"

/* check - the result is -1, 0 or 1; on 1, addr holds an IP address */
static void check(int r, const char *addr, size_t cap)
{
	unsigned char bin[16];

	CHECK(r >= -1 && r <= 1);
	if (r != 1)
		return;
	CHECK(memchr(addr, '\0', cap) != NULL);
	CHECK(inet_pton(AF_INET, addr, bin) == 1 || inet_pton(AF_INET6, addr, bin) == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char addr[INET6_ADDRSTRLEN], tiny[8];
	unsigned char *h = fuzz_heap(data, size);
	int sv[2], port = -1;

	memset(addr, 'X', sizeof addr), memset(tiny, 'X', sizeof tiny);
	check(proxy_v1_parse((const char *)h, size, addr, sizeof addr, &port), addr, sizeof addr);
	check(proxy_v1_parse((const char *)h, size, tiny, sizeof tiny, &port), tiny, sizeof tiny);
	memset(addr, 'X', sizeof addr), memset(tiny, 'X', sizeof tiny);
	check(proxy_v2_parse(h, size, addr, sizeof addr, &port), addr, sizeof addr);
	check(proxy_v2_parse(h, size, tiny, sizeof tiny, &port), tiny, sizeof tiny);
	free(h);

	/* the reader: all of the input, then EOF (the socket buffer holds 64K) */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(write(sv[1], data, size) == (ssize_t)size);
	shutdown(sv[1], SHUT_WR);
	memset(addr, 'X', sizeof addr);
	check(proxy_read(sv[0], 1, addr, sizeof addr, &port), addr, sizeof addr);
	close(sv[0]), close(sv[1]);
	CHECK(port >= -1 && port <= 65535);
	return 0;
}
