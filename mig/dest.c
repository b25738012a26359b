/*
 * dest.c - the receiving side: accept one connection, build the VM from
 * the stream's configuration, load RAM straight into guest memory and the
 * device state into a pending copy, then the handshake: READY when all of
 * it validated and applied, and start the vCPUs only on the source's GO.
 * Any error ends the migration with a one-line reason sent to the source;
 * nothing here has run the guest by then.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault.h"
#include "fill.h"
#include "log.h"
#include "mig_int.h"
#include "migratable.h"
#include "multifd.h"
#include "postcopy.h"
#include "util.h"

/*
 * Small on purpose: page data should land in guest memory straight from
 * readv(); whatever the buffer reads ahead is copied a second time.
 */
#define DEST_READ_BUFSIZE (64u << 10)

struct dest_ctx {
	int fd;
	struct vm *vm;
	int serial_fd;
	struct guest_ram *ram;		/* mapped ahead, or NULL */
	bool vm_created;
	struct vm_state_loader *sl;
	struct mig_stats *stats;
	/* parallel channels */
	int listen_fd;
	uint32_t page_size;
	const struct mig_ram_block *blocks;	/* the loader's table */
	size_t nblocks;
	struct mfd_recv *mfd;
	struct mig_fill *fill;		/* first writes by UFFDIO_COPY, or NULL */
	/* post-copy */
	struct mig_loader *l;
	struct pc_dest pc;
	bool pc_init, pc_on;
	uint64_t pcid;			/* this post-copy's id (recovery) */
};

static int on_config(void *opaque, const char *json, size_t len, struct err *err)
{
	struct dest_ctx *d = opaque;
	struct vm_config_strings strs;
	struct vm_config cfg;
	int ret;

	if (d->vm_created)
		return err_set(err, -EPROTO, "second CONFIG record");
	ret = vm_config_from_json(json, len, &cfg, &strs, err);
	if (ret)
		return ret;
	cfg.serial_fd = d->serial_fd;
	cfg.ram = d->ram;
	d->vm_created = true;		/* vm_destroy() is needed even on failure */
	ret = vm_create(d->vm, &cfg, err);
	if (ret)
		return ret;
	d->sl = vm_state_loader_new(d->vm);
	if (!d->sl)
		return err_set(err, -ENOMEM, "out of memory");
	if (d->stats)
		d->stats->ram_bytes = cfg.mem_size;
	log_info("mig", "dest: VM of %llu MiB, %u vCPUs created",
		 (unsigned long long)(cfg.mem_size >> 20), cfg.nr_vcpus);
	fault_point("dst-setup");
	return 0;
}

static int on_ram_blocks(void *opaque, struct mig_ram_block *blocks, size_t n,
			 struct err *err)
{
	struct dest_ctx *d = opaque;
	struct mig_ram_block ours[MIG_MAX_BLOCKS];
	unsigned nours;

	if (!d->vm_created)
		return err_set(err, -EPROTO, "RAM_BLOCKS before CONFIG");
	nours = vm_ram_blocks(d->vm, ours, MIG_MAX_BLOCKS);
	if (n != nours)
		return err_set(err, -EPROTO, "%zu RAM blocks in the stream, the VM has %u", n, nours);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(blocks[i].idstr, ours[i].idstr) || blocks[i].size != ours[i].size ||
		    blocks[i].page_size != ours[i].page_size)
			return err_set(err, -EPROTO,
				       "RAM block %zu ('%s', %llu bytes) does not match the VM's ('%s', %llu bytes)",
				       i, blocks[i].idstr, (unsigned long long)blocks[i].size,
				       ours[i].idstr, (unsigned long long)ours[i].size);
	}
	if (!d->pc_on)
		d->fill = mig_fill_start(ours, n, d->page_size);
	/* with the fill or post-copy, pages come to dest_pages() to be placed */
	for (size_t i = 0; i < n; i++)
		blocks[i].host = d->pc_on || d->fill ? NULL : ours[i].host;
	d->blocks = blocks;
	d->nblocks = n;
	return 0;
}

static int on_header(void *opaque, const struct mig_header *h, struct err *err)
{
	struct dest_ctx *d = opaque;

	(void)err;
	d->page_size = h->page_size;
	return 0;
}

/* The source announced parallel channels: accept them (multifd_recv.c). */
static int on_multifd_channels(void *opaque, const struct mig_mfd_channels *c,
			       struct err *err)
{
	struct dest_ctx *d = opaque;

	if (d->mfd)
		return err_set(err, -EPROTO, "second MULTIFD_CHANNELS");
	if (!d->blocks)
		return err_set(err, -EPROTO, "MULTIFD_CHANNELS before RAM_BLOCKS");
	if (d->pc_on)
		return err_set(err, -ENOTSUP, "parallel channels with post-copy are not supported");
	d->mfd = mfd_recv_open(d->listen_fd, c, d->blocks, d->nblocks, d->page_size, d->fill, err);
	return d->mfd ? 0 : err->code;
}

static int on_multifd_sync(void *opaque, uint64_t seq, struct err *err)
{
	struct dest_ctx *d = opaque;

	if (!d->mfd)
		return err_set(err, -EPROTO, "MULTIFD_SYNC without channels");
	return mfd_recv_sync(d->mfd, seq, err);
}

static int on_section(void *opaque, const struct mig_section_info *info,
		      struct mig_stream *in, struct err *err)
{
	struct dest_ctx *d = opaque;

	if (!d->sl)
		return err_set(err, -EPROTO, "device section '%s' before CONFIG", info->idstr);
	fault_point(d->pc_init ? "dst-pc-device-state" : "dst-device-state");
	if (d->pc_on)
		return err_set(err, -EPROTO, "device section '%s' after POSTCOPY_LISTEN", info->idstr);
	return vm_state_load_section(d->sl, info, in, err);
}

/* Everything up to this pass's end is in guest memory: tell the source. */
static int on_iter_end(void *opaque, uint64_t iteration, struct err *err)
{
	struct dest_ctx *d = opaque;
	char msg[24];
	int ret;

	fault_point(iteration == 1 ? "dst-pass1" : "dst-passN");
	if (d->pc_on)
		return err_set(err, -EPROTO, "RAM_ITER_END after POSTCOPY_LISTEN");
	snprintf(msg, sizeof(msg), "%llu", (unsigned long long)iteration);
	ret = mig_ctl_send(d->fd, MIG_CTL_ACK, msg);
	return ret ? err_set(err, ret, "cannot acknowledge pass %s: %s", msg, strerror(-ret)) : 0;
}

/*
 * Between the first POSTCOPY_DISCARD and POSTCOPY_LISTEN the source sends no
 * pages: the discarded ones are dropped from memory on arrival, and a page
 * written after that would be back without the post-copy's knowing.
 */
static int after_discard(const struct dest_ctx *d, struct err *err)
{
	if (d->pc_init && !d->pc_on)
		return err_set(err, -EPROTO, "RAM page after POSTCOPY_DISCARD, before POSTCOPY_LISTEN");
	return 0;
}

/* A re-sent page as a delta to what we hold: apply it in place. */
static int on_ram_xbzrle(void *opaque, const struct mig_ram_block *blk,
			 uint64_t offset, const uint8_t *delta, size_t len,
			 struct err *err)
{
	struct dest_ctx *d = opaque;
	uint8_t *page;

	if (after_discard(d, err))
		return err->code;
	if (d->pc_on)
		return err_set(err, -EPROTO, "XBZRLE page during post-copy");
	page = d->fill ? mig_fill_page(d->fill, (unsigned)(blk - d->blocks), offset, err) :
			 (uint8_t *)blk->host + offset;
	if (!page)
		return err->code;
	if (xbzrle_decode(delta, len, page, blk->page_size) < 0)
		return err_set(err, -EPROTO, "malformed XBZRLE delta (%zu bytes) for page 0x%llx of '%s'",
			       len, (unsigned long long)offset, blk->idstr);
	return 0;
}

static int dest_handover(struct dest_ctx *d, int fd, struct err *err);

/* ---- post-copy (mig/postcopy_dst.c does the work) ---- */

static int pc_setup(struct dest_ctx *d, struct err *err)
{
	struct mig_ram_block ours[MIG_MAX_BLOCKS];
	unsigned n;
	int ret;

	if (d->pc_init)
		return 0;
	if (!d->vm_created)
		return err_set(err, -EPROTO, "post-copy record before CONFIG");
	if (d->mfd)
		return err_set(err, -ENOTSUP, "post-copy with parallel channels is not supported");
	mig_fill_stop(d->fill);		/* post-copy registers guest RAM itself */
	d->fill = NULL;
	n = vm_ram_blocks(d->vm, ours, MIG_MAX_BLOCKS);
	ret = pc_dest_init(&d->pc, ours, n, err);
	d->pc_init = true;	/* pc_dest_fini() is needed even on failure */
	return ret;
}

static int dest_pc_discard(void *opaque, const struct mig_ram_block *blk,
			   uint64_t offset, const uint64_t *words, uint32_t nwords,
			   struct err *err)
{
	struct dest_ctx *d = opaque;
	int ret = pc_setup(d, err);

	fault_point("dst-pc-discard");
	return ret ? ret : pc_dest_discard(&d->pc, blk->id, offset, words, nwords, err);
}

/* State complete: arm userfaultfd, hand over, run, fetch the rest. */
static int dest_pc_listen(void *opaque, struct err *err)
{
	struct dest_ctx *d = opaque;
	int ret = pc_setup(d, err);

	if (!ret && d->l->hdr.page_size != VM_PAGE_SIZE)
		ret = err_set(err, -EPROTO, "post-copy needs %u-byte stream pages", VM_PAGE_SIZE);
	if (!ret)
		ret = pc_dest_listen(&d->pc, err);
	if (ret)
		return ret;
	fault_point("dst-pc-listen");
	for (size_t i = 0; i < d->l->nblocks; i++)
		d->l->blocks[i].host = NULL;	/* pages go through UFFDIO_COPY now */
	if (getrandom(&d->pcid, sizeof(d->pcid), 0) != sizeof(d->pcid) || !d->pcid)
		d->pcid = 0;	/* no id: a broken connection cannot be recovered */
	d->pc_on = true;
	ret = dest_handover(d, d->fd, err);
	if (ret) {
		d->pc_on = false;	/* nothing ran: fail as before GO */
		return ret;
	}
	mig_dest_status_set(MIG_STATE_POSTCOPY_ACTIVE, NULL);
	return pc_dest_start(&d->pc, d->fd, err);
}

static int dest_pages(void *opaque, const struct mig_ram_block *blk,
		      const uint64_t *offsets, void *const *data, size_t n,
		      struct err *err)
{
	struct dest_ctx *d = opaque;

	if (after_discard(d, err))
		return err->code;
	if (d->pc_on)
		return pc_dest_place(&d->pc, blk->id, offsets, data, n, err);
	if (d->fill)
		return mig_fill_pages(d->fill, (unsigned)(blk - d->blocks), offsets, data, n, err);
	return 0;	/* already placed in guest memory by the loader */
}

static int dest_zero(void *opaque, const struct mig_ram_block *blk,
		     uint64_t offset, uint64_t npages, struct err *err)
{
	struct dest_ctx *d = opaque;

	if (after_discard(d, err))
		return err->code;
	if (d->pc_on)
		return pc_dest_zero(&d->pc, blk->id, offset, npages, err);
	if (d->fill)
		mig_fill_zero(d->fill, (unsigned)(blk - d->blocks), offset, npages);
	else
		memset((uint8_t *)blk->host + offset, 0, (size_t)(npages * d->l->hdr.page_size));
	return 0;
}

static const struct mig_load_ops dest_ops = {
	.on_config = on_config,
	.on_ram_blocks = on_ram_blocks,
	.on_ram_pages = dest_pages,
	.on_ram_zero = dest_zero,
	.on_ram_xbzrle = on_ram_xbzrle,
	.on_iter_end = on_iter_end,
	.on_section = on_section,
	.on_header = on_header,
	.on_multifd_channels = on_multifd_channels,
	.on_multifd_sync = on_multifd_sync,
	.on_pc_discard = dest_pc_discard,
	.on_pc_listen = dest_pc_listen,
};

/* The whole stream, accepting the features this engine implements. */
static int dest_load(struct mig_stream *in, struct dest_ctx *d, struct err *err)
{
	struct mig_loader l;
	int rc;

	mig_loader_init(&l, in, &dest_ops, d);
	l.features_ok = MIG_FEAT_XBZRLE | MIG_FEAT_POSTCOPY | MIG_FEAT_MULTIFD;
	d->l = &l;
	rc = mig_loader_header(&l, err);
	while (!rc)
		rc = mig_loader_step(&l, err);
	mig_loader_fini(&l);
	d->l = NULL;
	return rc < 0 ? rc : 0;
}

static int accept_one(int listen_fd, struct err *err)
{
	int fd;

	do {
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return err_set(err, -errno, "accept: %s", strerror(errno));
	mig_sock_tune(fd);
	mig_keepalive_tune(fd, mig_keepalive_dest());
	return fd;
}

/* Stream loaded: apply state, READY, wait for GO, run. */
static int dest_handover(struct dest_ctx *d, int fd, struct err *err)
{
	char msg[MIG_CTL_MSG_MAX];
	uint16_t type;
	int ret;

	uint64_t t0 = time_now_ns(), t1;

	ret = vm_state_load_finish(d->sl, err);
	if (ret)
		return ret;
	t1 = time_now_ns();
	fault_point("dst-before-ready");
	if (d->pc_on && d->pcid) {
		char id[PC_ID_TEXT_LEN];

		pc_id_format(id, d->pcid);
		ret = mig_ctl_send(fd, MIG_CTL_READY, id);
	} else {
		ret = mig_ctl_send(fd, MIG_CTL_READY, NULL);
	}
	if (ret)
		return err_set(err, ret, "connection lost before READY: %s", strerror(-ret));
	fault_point("dst-after-ready");
	ret = mig_ctl_recv(fd, mig_keepalive_timeout_ms(mig_keepalive_dest()), &type, msg,
			   sizeof(msg), err);
	if (ret) {
		err_prefix(err, "waiting for the source's GO");
		return ret;
	}
	if (type == MIG_CTL_ERROR)
		return err_set(err, -ECANCELED, "source aborted the migration: %s", msg);
	if (type != MIG_CTL_GO)
		return err_set(err, -EPROTO, "expected GO, got %s", mig_ctl_name(type));
	fault_point("dst-after-go");
	ret = vm_start(d->vm, err);
	if (ret)
		return ret;
	log_info("mig", "dest: state applied in %.1f ms, GO %.1f ms after READY",
		 (t1 - t0) / 1e6, (time_now_ns() - t1) / 1e6);
	/* We own the VM now; RUNNING only tells the source it may go. */
	if (mig_ctl_send(fd, MIG_CTL_RUNNING, NULL))
		log_warn("mig", "dest: could not tell the source we run (it keeps the VM paused)");
	fault_point("dst-after-running");
	return 0;
}

/*
 * Send ERROR, then read and drop what the source still sends until it
 * closes (or a short while passes), so our close does not reset the
 * connection before the source has read why.
 */
static void tell_source(int fd, const char *msg)
{
	uint64_t deadline = time_now_ns() + 2000000000ULL;
	char buf[65536];

	if (mig_ctl_send(fd, MIG_CTL_ERROR, msg))
		return;
	shutdown(fd, SHUT_WR);
	while (time_now_ns() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 100) < 0 && errno != EINTR)
			break;
		if (p.revents && read(fd, buf, sizeof(buf)) <= 0)
			break;
	}
}

/*
 * The stream ended. After a post-copy every page must be here: stop the
 * faults, tell the source (PC_DONE with our figures). A failure after
 * GO leaves the guest waiting in its faults (it is lost).
 */
static int dest_pc_end(struct dest_ctx *d, int ret, struct err *err)
{
	struct pc_report r;
	char msg[MIG_CTL_MSG_MAX];

	if (!ret)
		ret = pc_dest_finish(&d->pc, err);
	if (ret) {
		log_err("mig", "dest: post-copy failed after the handover: %s; the guest cannot "
			"run without the source's pages and is lost", err->msg);
		return ret;
	}
	pc_dest_report(&d->pc, &r);
	pc_report_format(msg, sizeof(msg), &r);
	log_info("mig", "dest: post-copy done: %s", msg);
	if (mig_ctl_send(d->fd, MIG_CTL_PC_DONE, msg))
		log_warn("mig", "dest: could not send PC_DONE (the source keeps its copy paused)");
	return 0;
}

/*
 * Post-copy lost its connection: the guest pauses here with every page
 * it has, and we wait on the --incoming address for the source to come
 * back (tern migrate-recover). Returns the result of loading the rest.
 */
static int dest_pc_recover(struct dest_ctx *d, int listen_fd, struct mig_stream *in,
			   struct err *err)
{
	struct err e = { 0 };
	char why[200];
	int fd, ret;

	pc_dest_pause(&d->pc);
	if (vm_pause_within(d->vm, 2000, &e))
		log_warn("mig", "dest: pausing the guest: %s (the rest park when their page comes)",
			 e.msg);
	fprintf(stderr, "tern-vmm: postcopy-paused: %s; waiting for the source's "
		"migrate-recover\n", err->msg);
	mig_dest_status_set(MIG_STATE_POSTCOPY_PAUSED, err->msg);
	str_copy(why, sizeof(why), err->msg);
	if (d->stats)
		d->stats->state = MIG_STATE_POSTCOPY_PAUSED;
	mig_stream_fini(in);
	close(d->fd);
	d->fd = -1;
	err_clear(err);
	for (;;) {
		err_clear(&e);
		fd = mig_dest_wait_recovery(listen_fd, why, &e);
		if (!fd)
			fd = accept_one(listen_fd, &e);
		if (fd < 0) {
			d->pcid = 0;	/* no way back */
			if (fd == -EINTR)	/* asked to stop: e says so */
				return err_set(err, fd, "%s", e.msg);
			return err_set(err, fd, "waiting for recovery: %s", e.msg);
		}
		fd = mig_secure_accept(fd, &e);	/* the same TLS rules as the first time */
		if (fd < 0) {
			log_warn("mig", "dest: recovery connection refused: %s", e.msg);
			continue;
		}
		mig_keepalive_tune(fd, mig_keepalive_dest());
		if (!pc_dest_recover_handshake(&d->pc, fd, d->pcid, &e))
			break;
		log_warn("mig", "dest: %s", e.msg);
		close(fd);
	}
	d->fd = fd;
	ret = mig_stream_init_fd_reader(in, fd, DEST_READ_BUFSIZE);
	if (ret)
		return err_set(err, ret, "out of memory");
	mig_stream_set_timeout(in, mig_keepalive_stream_timeout_ms(mig_keepalive_dest()));
	ret = pc_dest_start(&d->pc, fd, err);
	if (ret)
		return ret;
	ret = pc_dest_rerequest(&d->pc);
	vm_resume(d->vm, NULL);
	fprintf(stderr, "tern-vmm: postcopy-active: recovered, %d outstanding faults asked again\n",
		ret);
	if (d->stats)
		d->stats->state = MIG_STATE_POSTCOPY_ACTIVE;
	mig_dest_status_set(MIG_STATE_POSTCOPY_ACTIVE, NULL);
	return dest_load(in, d, err);
}

int mig_dest_receive(int listen_fd, struct vm *vm, int serial_fd, struct guest_ram *ram,
		     struct mig_stats *stats, struct err *err)
{
	struct dest_ctx d = { .vm = vm, .serial_fd = serial_fd, .ram = ram, .stats = stats,
			      .listen_fd = listen_fd };
	struct mig_stream in;
	uint64_t t0;
	int fd, ret;

	fd = accept_one(listen_fd, err);
	if (fd >= 0)
		fd = mig_secure_accept(fd, err);
	if (fd < 0)
		return fd;
	mig_keepalive_tune(fd, mig_keepalive_dest());	/* TLS: on its socketpair */
	d.fd = fd;
	t0 = time_now_ns();
	ret = mig_stream_init_fd_reader(&in, fd, DEST_READ_BUFSIZE);
	if (ret) {
		close(fd);
		return err_set(err, ret, "out of memory");
	}
	mig_stream_set_timeout(&in, mig_keepalive_stream_timeout_ms(mig_keepalive_dest()));
	ret = dest_load(&in, &d, err);
	if (ret && d.mfd) {		/* a channel broke first: say so */
		struct err ce = { 0 };

		if (mfd_recv_error(d.mfd, &ce)) {
			err_clear(err);
			err_set(err, ce.code, "%s", ce.msg);
		}
	}
	mfd_recv_free(d.mfd);		/* every page is in: stop the channels */
	d.mfd = NULL;
	mig_fill_stop(d.fill);		/* guest RAM is ordinary memory again */
	d.fill = NULL;
	while (ret && d.pc_on && d.pcid)
		ret = dest_pc_recover(&d, listen_fd, &in, err);
	fd = d.fd;
	if (d.pc_on)
		ret = dest_pc_end(&d, ret, err);
	else if (!ret)
		ret = dest_handover(&d, fd, err);
	if (stats) {
		stats->transferred = mig_stream_offset(&in);
		stats->elapsed_ms = (time_now_ns() - t0) / 1000000;
		stats->state = ret ? MIG_STATE_FAILED : MIG_STATE_COMPLETED;
	}
	if (d.pc_on)
		mig_dest_status_set(ret ? MIG_STATE_POSTCOPY_FAILED : MIG_STATE_COMPLETED,
				    ret ? err->msg : NULL);
	if (ret && d.pc_on) {
		if (stats)
			stats->state = MIG_STATE_POSTCOPY_FAILED;
		mig_stream_fini(&in);
		close(fd);
		return ret;	/* vCPUs wait in faults: the caller must not touch the VM */
	}
	if (ret) {
		if (!err->code)
			err_set(err, ret, "%s", strerror(-ret));
		tell_source(fd, err->msg);
	}
	mig_stream_fini(&in);
	close(fd);
	if (d.sl)
		vm_state_loader_free(d.sl);
	if (d.pc_init)
		pc_dest_fini(&d.pc);
	if (ret && d.vm_created)
		vm_destroy(vm);
	return ret;
}
