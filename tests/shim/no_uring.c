/*
 * A fault-injection shim (LD_PRELOAD) for one test: makes liburing's ring
 * setup fail the way Docker's default seccomp profile or
 * kernel.io_uring_disabled=2 makes it fail, with -EPERM. The sandbox the
 * tests run in cannot turn io_uring off for real, so this stands in; it is
 * never linked into the product.
 */
#include <errno.h>
#include <liburing.h>

int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p)
{
	(void)entries;
	(void)ring;
	(void)p;
	return -EPERM;
}
