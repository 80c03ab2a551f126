/*
 * worker.h - a prefork worker: accept, admit, serve one connection after
 * another.
 */
#ifndef WORKER_H
#define WORKER_H

void worker_main(const int *lfd, int nlisten, int chan)
    __attribute__((noreturn));

#endif
