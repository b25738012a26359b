/*
 * fmt.c - a small vsnprintf for tern-guest: %d %i %u %x %X %p %s %c %%, the
 * 'l'/'ll'/'z' length modifiers, a field width and the '0' and '-' flags.
 * Output is always NUL-terminated; the return value is the length written
 * (truncated to size - 1).
 */
#include <stdarg.h>

#include "tg.h"

struct tg_out {
	char *buf;
	unsigned long size;
	unsigned long len;
};

static void tg_put(struct tg_out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len++] = c;
}

static void tg_put_pad(struct tg_out *o, const char *s, unsigned long n,
		       int width, bool left, char pad)
{
	int fill = width > (int)n ? width - (int)n : 0;

	while (!left && fill-- > 0)
		tg_put(o, pad);
	while (n--)
		tg_put(o, *s++);
	while (left && fill-- > 0)
		tg_put(o, ' ');
}

static void tg_put_num(struct tg_out *o, u64 v, bool neg, unsigned base,
		       bool upper, int width, bool left, char pad)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int i = sizeof(tmp);

	do {
		tmp[--i] = digits[v % base];
		v /= base;
	} while (v);
	if (neg) {
		if (pad == '0') {
			tg_put(o, '-');
			width--;
		} else {
			tmp[--i] = '-';
		}
	}
	tg_put_pad(o, tmp + i, sizeof(tmp) - i, width, left, pad);
}

static u64 tg_arg_u(va_list *ap, int lng)
{
	return lng ? va_arg(*ap, unsigned long) : va_arg(*ap, unsigned int);
}

static s64 tg_arg_s(va_list *ap, int lng)
{
	return lng ? va_arg(*ap, long) : va_arg(*ap, int);
}

static const char *tg_conv(struct tg_out *o, const char *f, va_list *ap)
{
	bool left = false;
	char pad = ' ';
	int width = 0, lng = 0;
	const char *s;
	s64 sv;
	char c;

	for (; *f == '0' || *f == '-'; f++) {
		if (*f == '0')
			pad = '0';
		else
			left = true;
	}
	for (; *f >= '0' && *f <= '9'; f++)
		width = width * 10 + (*f - '0');
	for (; *f == 'l' || *f == 'z'; f++)
		lng = 1;
	switch (*f) {
	case 'd':
	case 'i':
		sv = tg_arg_s(ap, lng);
		tg_put_num(o, sv < 0 ? -(u64)sv : (u64)sv, sv < 0, 10, false,
			   width, left, pad);
		break;
	case 'u':
		tg_put_num(o, tg_arg_u(ap, lng), false, 10, false, width, left,
			   pad);
		break;
	case 'x':
	case 'X':
		tg_put_num(o, tg_arg_u(ap, lng), false, 16, *f == 'X', width,
			   left, pad);
		break;
	case 'p':
		tg_put_num(o, (u64)va_arg(*ap, void *), false, 16, false,
			   width, left, pad);
		break;
	case 's':
		s = va_arg(*ap, const char *);
		if (!s)
			s = "(null)";
		tg_put_pad(o, s, strlen(s), width, left, ' ');
		break;
	case 'c':
		c = (char)va_arg(*ap, int);
		tg_put_pad(o, &c, 1, width, left, ' ');
		break;
	case '%':
		tg_put(o, '%');
		break;
	default:
		return f;	/* unknown conversion (or NUL): stop */
	}
	return f + 1;
}

int tg_vsnprintf(char *buf, unsigned long size, const char *fmt, va_list ap)
{
	struct tg_out o = { buf, size, 0 };
	va_list aq;

	va_copy(aq, ap);
	while (*fmt) {
		if (*fmt != '%') {
			tg_put(&o, *fmt++);
			continue;
		}
		fmt = tg_conv(&o, fmt + 1, &aq);
		if (!*fmt)
			break;
	}
	va_end(aq);
	if (size)
		buf[o.len] = '\0';
	return (int)o.len;
}

int tg_snprintf(char *buf, unsigned long size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = tg_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
