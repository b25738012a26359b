/*
 * libc.c - the few libc functions gcc may call implicitly in freestanding
 * code (memset/memcpy/memcmp) plus strlen, for tern-guest.
 */
#include "tg.h"

void *memset(void *d, int c, unsigned long n)
{
	void *ret = d;

	__asm__ volatile("rep stosb"
			 : "+D"(d), "+c"(n)
			 : "a"(c)
			 : "memory");
	return ret;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	void *ret = d;

	__asm__ volatile("rep movsb"
			 : "+D"(d), "+S"(s), "+c"(n)
			 :
			 : "memory");
	return ret;
}

int memcmp(const void *a, const void *b, unsigned long n)
{
	const u8 *x = a, *y = b;
	unsigned long i;

	for (i = 0; i < n; i++) {
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	}
	return 0;
}

unsigned long strlen(const char *s)
{
	unsigned long n = 0;

	while (s[n])
		n++;
	return n;
}
