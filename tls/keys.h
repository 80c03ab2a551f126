/*
 * keys.h - the engine's session ticket keys (keys.c): what start-up
 * (smtpd-tls.c) and the relay's poll loop (relay.c) share.
 */
#ifndef KEYS_H
#define KEYS_H

struct tls_config;

void keys_use(struct tls_config *conf, const char *log_id, int to_stderr);
int keys_channel(int fd);
const char *keys_file(const char *path);
int keys_fd(void);
void keys_read(void);

#endif
