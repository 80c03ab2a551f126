/*
 * main.c - the program's entry point, kept apart so that the tests can
 * link smtpd.c (the dialogue) with a main() of their own.
 */
#include "smtpd.h"

int main(int argc, char **argv)
{
	return smtpd_main(argc, argv);
}
