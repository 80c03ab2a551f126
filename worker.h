/*
 * worker.h - a prefork worker: accept, admit, serve one connection after
 * another.
 */
#ifndef WORKER_H
#define WORKER_H

struct board;

void worker_main(const int *lfd, int nlisten, int chan, struct board *b, int slot)
    __attribute__((noreturn));

#endif
