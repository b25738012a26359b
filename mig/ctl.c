/*
 * ctl.c - the handshake's control records (READY, GO, RUNNING, ERROR).
 * Each is one stream-framed record, written with a single write() and
 * read with a deadline, so neither side can hang on a silent peer.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "mig_int.h"
#include "util.h"

const char *mig_ctl_name(uint16_t type)
{
	switch (type) {
	case MIG_CTL_READY: return "READY";
	case MIG_CTL_GO: return "GO";
	case MIG_CTL_RUNNING: return "RUNNING";
	case MIG_CTL_ERROR: return "ERROR";
	case MIG_CTL_ACK: return "ACK";
	case MIG_CTL_PC_REQ: return "PC_REQ";
	case MIG_CTL_PC_DONE: return "PC_DONE";
	case MIG_CTL_PC_RESUME: return "PC_RESUME";
	case MIG_CTL_PC_BITMAP: return "PC_BITMAP";
	default: return "?";
	}
}

static void le16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void le32(uint8_t *p, uint32_t v) { le16(p, v); le16(p + 2, v >> 16); }
static void le64(uint8_t *p, uint64_t v) { le32(p, v); le32(p + 4, v >> 32); }
static uint16_t rd16(const uint8_t *p) { return p[0] | p[1] << 8; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

int mig_ctl_send(int fd, uint16_t type, const char *msg)
{
	return mig_ctl_send_raw(fd, type, msg ? msg : "", msg ? strnlen(msg, MIG_CTL_MSG_MAX) : 0);
}

int mig_ctl_send_raw(int fd, uint16_t type, const void *msg, size_t len)
{
	uint8_t buf[MIG_REC_HDR_SIZE + MIG_CTL_MSG_MAX];
	size_t off = 0;

	if (len > MIG_CTL_MSG_MAX)
		return -EMSGSIZE;
	le16(buf, type);
	le16(buf + 2, 0);
	le32(buf + 4, 0);
	le64(buf + 8, len);
	memcpy(buf + MIG_REC_HDR_SIZE, msg, len);
	len += MIG_REC_HDR_SIZE;
	while (off < len) {
		ssize_t r = write(fd, buf + off, len - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		off += r;
	}
	return 0;
}

/* Read exactly n bytes before the deadline. */
static int read_deadline(int fd, uint8_t *buf, size_t n, uint64_t deadline_ns)
{
	size_t off = 0;

	while (off < n) {
		uint64_t now = time_now_ns();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r;

		/* data already there counts even past the deadline (we were stopped) */
		r = poll(&p, 1, now >= deadline_ns ? 0 :
			 (int)((deadline_ns - now) / 1000000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0 && time_now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		if (r == 0)
			continue;
		ssize_t got = read(fd, buf + off, n - off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -ECONNRESET;
		off += got;
	}
	return 0;
}

int mig_ctl_recv(int fd, int timeout_ms, uint16_t *type, char *msg,
		 size_t msglen, struct err *err)
{
	uint8_t body[MIG_CTL_MSG_MAX];
	size_t len;
	int ret = mig_ctl_recv_raw(fd, timeout_ms, type, body, &len, err);

	if (ret)
		return ret;
	if (msg && msglen) {
		size_t n = MIN(len, msglen - 1);

		memcpy(msg, body, n);
		msg[n] = '\0';
		for (size_t i = 0; i < n; i++)	/* keep it one printable line */
			if (msg[i] < 0x20 || msg[i] == 0x7f)
				msg[i] = ' ';
	}
	return 0;
}

int mig_ctl_recv_raw(int fd, int timeout_ms, uint16_t *type,
		     uint8_t body[MIG_CTL_MSG_MAX], size_t *body_len, struct err *err)
{
	uint64_t deadline = time_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	uint8_t hdr[MIG_REC_HDR_SIZE];
	uint64_t len;
	int ret = read_deadline(fd, hdr, sizeof(hdr), deadline);

	if (ret == -ETIMEDOUT)
		return err_set(err, ret, "peer sent nothing for %d ms", timeout_ms);
	if (ret)
		return err_set(err, ret, "connection lost: %s",
			       ret == -ECONNRESET ? "closed by peer" : strerror(-ret));
	*type = rd16(hdr);
	len = rd64(hdr + 8);
	if (*type < MIG_CTL_READY || *type > MIG_CTL_LAST || rd16(hdr + 2) || rd32(hdr + 4))
		return err_set(err, -EPROTO, "bad control record (type 0x%x)", *type);
	if (len > MIG_CTL_MSG_MAX)
		return err_set(err, -EMSGSIZE, "control record %s: %llu bytes is over the limit",
			       mig_ctl_name(*type), (unsigned long long)len);
	ret = read_deadline(fd, body, len, deadline);
	if (ret)
		return err_set(err, ret, "connection lost inside a control record");
	*body_len = (size_t)len;
	return 0;
}
