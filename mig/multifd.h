/*
 * multifd.h - private to mig/: parallel channels (like QEMU's multifd).
 *
 * Source: mfd_send spreads RAM_PAGES-sized batches over N extra TCP
 * connections, one sender thread each, optionally compressing each batch
 * (zstd/lz4). Destination: mfd_recv accepts the N connections that carry
 * this migration's random id and runs one receive thread per channel that
 * writes pages straight into guest RAM.
 *
 * Ordering: a pass ends with mfd_send_sync(): a MULTIFD_SYNC on every
 * channel, then one on the main stream; the destination's main loader
 * waits (mfd_recv_sync) until every channel has applied all it carried up
 * to that SYNC. Every dirty pass ends this way before its ACK, and the
 * source starts the next pass only after the ACK, so an older copy of a
 * page can never land after a newer one. Stop-and-copy ends with a sync
 * too, before the device state (which stays on the main stream).
 */
#ifndef MIG_MULTIFD_H
#define MIG_MULTIFD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "stream.h"

struct mfd_send;
struct mfd_recv;

/* n channels, method enum mig_mfd_method, level for zstd (0: default). */
struct mfd_send *mfd_send_new(unsigned n, uint32_t method, int level,
			      uint32_t page_size, atomic_bool *cancel,
			      struct err *err);
/* MULTIFD_CHANNELS on the main stream (after RAM_BLOCKS). */
int mfd_send_announce(struct mfd_send *s, struct mig_stream *out);
/*
 * Connect every channel to uri (keepalive, then TLS when p->tls, exactly
 * like the main connection), say HELLO, start the sender threads.
 */
struct mig_params;
struct mig_keepalive;
int mfd_send_connect(struct mfd_send *s, const char *uri, const struct mig_params *p,
		     const struct mig_keepalive *ka, struct err *err);
/* Queue one batch (n pages of block); blocks while every channel is busy. */
int mfd_send_batch(struct mfd_send *s, uint32_t block, const uint64_t *offsets,
		   const void *const *pages, size_t n, struct err *err);
/* End a pass: SYNC on every channel, wait until sent, SYNC on `out`. */
int mfd_send_sync(struct mfd_send *s, struct mig_stream *out, struct err *err);
/* Bytes written to the channels so far. */
uint64_t mfd_send_bytes(struct mfd_send *s);
/* Pages that went out in compressed batches so far. */
uint64_t mfd_send_pages_compressed(struct mfd_send *s);
/* Stop the threads (unblocking any write), close, free. NULL is fine. */
void mfd_send_free(struct mfd_send *s);

/*
 * Accept c->n channels on listen_fd carrying c->id (others are refused and
 * closed), then start one receive thread each. Pages go through fill
 * (fill.h) when it is not NULL, else to blocks[].host, which must be set.
 */
struct mig_fill;
struct mfd_recv *mfd_recv_open(int listen_fd, const struct mig_mfd_channels *c,
			       const struct mig_ram_block *blocks, size_t nblocks,
			       uint32_t page_size, struct mig_fill *fill, struct err *err);
/* Wait until every channel has applied everything up to SYNC seq. */
int mfd_recv_sync(struct mfd_recv *r, uint64_t seq, struct err *err);
/* A channel's failure, if one failed: its code, and its message into err. */
int mfd_recv_error(struct mfd_recv *r, struct err *err);
void mfd_recv_free(struct mfd_recv *r);

#endif
