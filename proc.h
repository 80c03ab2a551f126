/*
 * proc.h - process plumbing the start-up modes share.
 */
#ifndef PROC_H
#define PROC_H

#include "deliver.h"

#define LISTEN_MAX	16	/* listening sockets, ours or systemd's */

void proc_drop_privileges(const char *name);
int proc_start_deliverer(struct deliverer *d);
int proc_listen_fds(void);
int proc_is_listening(int fd);
void proc_catch(int sig, void (*fn)(int));
void proc_block_signals(int block);
int proc_detach(const char *pid_file);
void proc_close_fds(void);

#endif
