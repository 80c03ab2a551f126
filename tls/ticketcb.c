/*
 * ticketcb.c - make libtls's session tickets work over OpenSSL.
 *
 * Debian's libtls (LibreTLS 3.7, libtls over OpenSSL 3) installs a
 * ticket key callback written for LibreSSL's libssl, where 0 means
 * "ticket keys set": OpenSSL reads 0 as "no ticket" and sends an empty
 * NewSessionTicket, so no client could ever resume.  (OpenSSL's own
 * rule, SSL_CTX_set_tlsext_ticket_key_cb(3): when encrypting, 1 is
 * success, 0 no ticket, <0 an error; when decrypting 0 means unknown
 * key, which both agree on.)
 * We interpose the one libssl entry point that installs the callback
 * (SSL_CTX_set_tlsext_ticket_key_cb is a macro over
 * SSL_CTX_callback_ctrl) and wrap libtls's callback: an encryption
 * that it reports as 0 becomes 1.  With a libtls that already answers
 * 1, or with LibreSSL, which takes any non-negative value as success,
 * the wrapper changes nothing.  Every other call goes straight through.
 * While we hold the context we also ask for one TLS 1.3 ticket per full
 * handshake instead of OpenSSL's two: an SMTP client resumes one
 * connection at a time, and each ticket costs an encryption and a write.
 * No OpenSSL header is needed: the types stay opaque pointers.
 */
#include <dlfcn.h>
#include <stddef.h>

#define CTRL_TICKET_KEY_CB	72	/* SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB */

typedef int (*ticket_cb)(void *ssl, unsigned char *name, unsigned char *iv,
    void *cipher, void *hmac, int enc);
typedef long (*ctrl_fn)(void *ctx, int cmd, void (*fp)(void));
typedef int (*num_fn)(void *ctx, size_t n);	/* SSL_CTX_set_num_tickets */

static ticket_cb libtls_cb;	/* one server config per engine: one callback */

/* wrapped - libtls's callback with OpenSSL's meaning of its result */
static int wrapped(void *ssl, unsigned char *name, unsigned char *iv,
    void *cipher, void *hmac, int enc)
{
	int r = libtls_cb(ssl, name, iv, cipher, hmac, enc);

	return enc == 1 && r == 0 ? 1 : r;
}

/* SSL_CTX_callback_ctrl - libssl's, with the ticket callback wrapped */
long SSL_CTX_callback_ctrl(void *ctx, int cmd, void (*fp)(void))
{
	static ctrl_fn real;

	if (!real && !(real = (ctrl_fn)dlsym(RTLD_NEXT, "SSL_CTX_callback_ctrl")))
		return 0;
	if (cmd == CTRL_TICKET_KEY_CB && fp) {
		num_fn num = (num_fn)dlsym(RTLD_DEFAULT, "SSL_CTX_set_num_tickets");

		libtls_cb = (ticket_cb)fp;
		fp = (void (*)(void))wrapped;
		if (num)	/* OpenSSL 1.1.1 and later */
			num(ctx, 1);
	}
	return real(ctx, cmd, fp);
}
