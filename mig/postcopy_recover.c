/*
 * postcopy_recover.c - the recovery handshake of a post-copy whose
 * connection broke (docs/migration-protocol.md, "Post-copy recovery").
 * Both sides keep everything while paused; a new connection from the
 * source starts with
 *
 *   src -> dst  PC_RESUME  "pcid=<id>"  (the id the destination sent with READY)
 *   dst -> src  PC_BITMAP  ...          (the pages it still lacks, by slices)
 *   dst -> src  PC_RESUME  ""           (the bitmap is complete)
 *
 * or ERROR if the id is not this migration's. The source then restarts
 * its stream (header, RAM_BLOCKS) and pushes exactly the pages of that
 * bitmap: pages it sent that never arrived are in it, so none is lost.
 */
#include "postcopy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "mig_int.h"
#include "util.h"

#define HANDSHAKE_MS 10000

static int send_bitmap(void *fd, uint32_t block, uint64_t first_word,
		       const uint64_t *words, uint32_t n)
{
	uint8_t buf[MIG_CTL_MSG_MAX];

	return mig_ctl_send_raw(*(int *)fd, MIG_CTL_PC_BITMAP, buf,
				pc_bitmap_encode(buf, block, first_word, words, n));
}

static int send_needed(struct pc_dest *pc, int fd)
{
	uint64_t words[PC_BITMAP_WORDS_MAX];

	return pc_dest_each_needed(pc, words, PC_BITMAP_WORDS_MAX, send_bitmap, &fd);
}

int pc_dest_recover_handshake(struct pc_dest *pc, int fd, uint64_t id,
			      struct err *err)
{
	char msg[MIG_CTL_MSG_MAX];
	uint64_t got = 0;
	uint16_t type;
	int ret = mig_ctl_recv(fd, HANDSHAKE_MS, &type, msg, sizeof(msg), err);

	if (ret)
		return ret;
	if (type != MIG_CTL_PC_RESUME || pc_id_parse(msg, &got) || got != id) {
		mig_ctl_send(fd, MIG_CTL_ERROR, "not the post-copy migration paused here");
		return err_set(err, -EPERM, "recovery attempt with %s '%.40s': not this migration",
			       mig_ctl_name(type), msg);
	}
	fault_point("dst-pc-recover");
	ret = send_needed(pc, fd);
	if (!ret)
		ret = mig_ctl_send(fd, MIG_CTL_PC_RESUME, NULL);
	if (ret)
		return err_set(err, ret, "recovery: sending the bitmap: %s", strerror(-ret));
	log_info("mig", "dest: recovery accepted: %llu pages still to fetch",
		 (unsigned long long)atomic_load(&pc->left));
	return 0;
}

/* A slice of the destination's bitmap: inside block b, no bit past its end. */
static int apply_slice(struct ram_sender *rs, uint64_t **scratch, const uint8_t *body,
		       size_t len, struct err *err)
{
	uint64_t words[PC_BITMAP_WORDS_MAX], w0, nwords;
	uint32_t id, n;
	unsigned b;

	if (pc_bitmap_decode(body, len, &id, &w0, words, &n, err))
		return err->code;
	for (b = 0; b < rs->nblocks && rs->blocks[b].id != id; b++)
		;
	if (b == rs->nblocks)
		return err_set(err, -EPROTO, "PC_BITMAP for unknown block %u", id);
	nwords = (rs->npages[b] + 63) / 64;
	if (w0 > nwords || n > nwords - w0)
		return err_set(err, -EPROTO, "PC_BITMAP words %llu+%u past block %u",
			       (unsigned long long)w0, n, id);
	if (w0 + n == nwords && rs->npages[b] % 64 &&
	    words[n - 1] >> (rs->npages[b] % 64))
		return err_set(err, -EPROTO, "PC_BITMAP marks pages past block %u", id);
	memcpy(scratch[b] + w0, words, n * sizeof(words[0]));
	return 0;
}

static int read_bitmap(int fd, struct ram_sender *rs, uint64_t **scratch, struct err *err)
{
	for (;;) {
		uint8_t body[MIG_CTL_MSG_MAX];
		uint16_t type;
		size_t len;
		int ret = mig_ctl_recv_raw(fd, HANDSHAKE_MS, &type, body, &len, err);

		if (ret)
			return ret;
		if (type == MIG_CTL_PC_RESUME)
			return 0;
		if (type == MIG_CTL_ERROR) {
			body[MIN(len, sizeof(body) - 1)] = 0;
			return err_set(err, -EPERM, "destination refused the recovery: %s",
				       (char *)body);
		}
		if (type != MIG_CTL_PC_BITMAP)
			return err_set(err, -EPROTO, "recovery: unexpected %s", mig_ctl_name(type));
		ret = apply_slice(rs, scratch, body, len, err);
		if (ret)
			return ret;
	}
}

int pc_source_recover_handshake(int fd, uint64_t id, struct ram_sender *rs,
				struct err *err)
{
	uint64_t *scratch[MIG_MAX_BLOCKS] = { NULL };
	char msg[PC_ID_TEXT_LEN];
	int ret = 0;

	for (unsigned b = 0; b < rs->nblocks && !ret; b++) {
		scratch[b] = calloc((rs->npages[b] + 63) / 64, sizeof(uint64_t));
		if (!scratch[b])
			ret = err_set(err, -ENOMEM, "out of memory for the recovery bitmap");
	}
	pc_id_format(msg, id);
	if (!ret && mig_ctl_send(fd, MIG_CTL_PC_RESUME, msg))
		ret = err_set(err, -ECONNRESET, "recovery: the destination closed the connection");
	if (!ret)
		fault_point("src-pc-recover");
	if (!ret)
		ret = read_bitmap(fd, rs, scratch, err);
	for (unsigned b = 0; b < rs->nblocks; b++) {
		if (!ret)
			memcpy(rs->bitmap[b], scratch[b], (rs->npages[b] + 63) / 64 * sizeof(uint64_t));
		free(scratch[b]);
	}
	return ret;
}

void pc_source_resume(struct pc_source *ps, int fd)
{
	ps->fd = fd;
	ps->left = 0;
	pc_reqq_init(&ps->q);
	for (unsigned b = 0; b < ps->rs->nblocks; b++) {
		ps->left += pc_bitmap_count(ps->rs->bitmap[b], ps->rs->npages[b]);
		ps->cursor[b] = 0;
	}
}
