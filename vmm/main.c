/*
 * main.c - the tern-vmm process: parse options, build and boot the VM,
 * serve the control API, and run the event loop (console input, signals,
 * guest exit requests) until the VM ends. Exit statuses are documented in
 * docs/vmm.md and in vmm_exit_status() below.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "api.h"
#include "fault.h"
#include "host.h"
#include "log.h"
#include "mig.h"
#include "options.h"
#include "tls.h"
#include "util.h"
#include "vm.h"
#include "vmm_api.h"

#define CONSOLE_ESCAPE	0x01	/* Ctrl-A, then 'x' quits */

enum {
	EXIT_OK = 0,		/* guest powered off, API shutdown, SIGTERM/SIGINT */
	EXIT_ERROR = 1,		/* start-up or runtime failure */
	EXIT_USAGE = 2,		/* bad command line */
	EXIT_RESET = 3,		/* guest reboot / reset / triple fault (panic=-1) */
	EXIT_DEBUG_BASE = 64,	/* + value written to the debug-exit port (0..63) */
};

struct vmm {
	struct vm vm;
	struct vmm_options opt;
	struct api_server *api;
	int serial_fd;
	bool tty_raw;
	struct termios tty_saved;
	bool stdin_open;
	bool escape;
	struct tls_ctx *tls;		/* --tls-*: host identity for migrations */
	struct guest_ram ram;		/* --incoming --memory: RAM mapped ahead */
};

static int vmm_exit_status(const struct vm *vm)
{
	switch (vm->exit_reason) {
	case VM_EXIT_POWEROFF:
	case VM_EXIT_API_SHUTDOWN:
	case VM_EXIT_SIGNAL:
	case VM_EXIT_MIGRATED:
		return EXIT_OK;
	case VM_EXIT_RESET:
		return EXIT_RESET;
	case VM_EXIT_DEBUG_PORT:
		return EXIT_DEBUG_BASE + (int)vm->exit_value;
	default:
		return EXIT_ERROR;
	}
}

static int open_serial(struct vmm *m, struct err *err)
{
	switch (m->opt.serial) {
	case SERIAL_STDIO:
		m->serial_fd = STDOUT_FILENO;
		m->stdin_open = true;
		return 0;
	case SERIAL_FILE:
		m->serial_fd = open(m->opt.serial_path,
				    O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
		if (m->serial_fd < 0)
			return err_set(err, -errno, "--serial: cannot open %s: %s",
				       m->opt.serial_path, strerror(errno));
		return 0;
	default:
		m->serial_fd = -1;
		return 0;
	}
}

static void tty_raw(struct vmm *m)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &m->tty_saved))
		return;
	t = m->tty_saved;
	cfmakeraw(&t);
	t.c_oflag |= OPOST | ONLCR;	/* keep "\n" -> "\r\n" on output */
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
		m->tty_raw = true;
}

static void tty_restore(struct vmm *m)
{
	if (m->tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &m->tty_saved);
	m->tty_raw = false;
}

/* Console input: Ctrl-A x quits, Ctrl-A Ctrl-A sends one Ctrl-A. */
static void console_input(struct vmm *m)
{
	uint8_t buf[256], out[256];
	size_t n = 0;
	ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));

	if (r <= 0) {
		if (r == 0 || (errno != EINTR && errno != EAGAIN))
			m->stdin_open = false;
		return;
	}
	for (ssize_t i = 0; i < r; i++) {
		uint8_t c = buf[i];

		if (m->tty_raw && m->escape) {
			m->escape = false;
			if (c == 'x' || c == 'X') {
				vm_request_exit(&m->vm, VM_EXIT_SIGNAL, 0, "quit from console (Ctrl-A x)");
				return;
			}
			if (c != CONSOLE_ESCAPE)
				continue;
		} else if (m->tty_raw && c == CONSOLE_ESCAPE) {
			m->escape = true;
			continue;
		}
		out[n++] = c;
	}
	uart16550_receive(&m->vm.uart, out, n);
}

static void handle_signal(struct vmm *m, int sfd)
{
	struct signalfd_siginfo si;

	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return;
	vm_request_exit(&m->vm, VM_EXIT_SIGNAL, 0, "terminating on signal %u (%s)",
			si.ssi_signo, strsignal(si.ssi_signo));
}

static int event_loop(struct vmm *m, int sfd)
{
	struct epoll_event ev, evs[4];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		return -errno;
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = sfd };
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	ev.data.fd = m->vm.exit_efd;
	epoll_ctl(ep, EPOLL_CTL_ADD, m->vm.exit_efd, &ev);
	if (m->stdin_open) {
		ev.data.fd = STDIN_FILENO;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) < 0)
			m->stdin_open = false;	/* e.g. a regular file */
	}
	for (;;) {
		int n = epoll_wait(ep, evs, 4, 250);

		vmm_api_tick();
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == sfd)
				handle_signal(m, sfd);
			else if (fd == STDIN_FILENO)
				console_input(m);
			if (fd == STDIN_FILENO && !m->stdin_open)
				epoll_ctl(ep, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
		}
		if (m->vm.exit_reason != VM_EXIT_NONE)
			break;
	}
	close(ep);
	return 0;
}

static int block_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, vcpu_kick_signal());
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigdelset(&set, vcpu_kick_signal());
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Wait for the source to connect (or a signal), then receive the VM. */
static int receive_vm(struct vmm *m, int sfd, struct err *err)
{
	struct mig_stats st = { 0 };
	struct pollfd p[2];
	int lfd, ret;

	ret = mig_dest_set_keepalive(m->opt.keepalive_interval_s ? m->opt.keepalive_interval_s :
				     MIG_KEEPALIVE_INTERVAL_S,
				     m->opt.keepalive_count ? m->opt.keepalive_count :
				     MIG_KEEPALIVE_COUNT, err);
	if (ret)
		return ret;
	if (m->opt.memory_set) {	/* map (and preallocate) RAM before listening */
		ret = ram_map(&m->ram, m->opt.memory, m->opt.mem_prealloc, err);
		if (ret)
			return ret;
	}
	lfd = mig_dest_listen(m->opt.incoming, err);
	if (lfd < 0)
		return lfd;
	fprintf(stderr, "tern-vmm: waiting for an incoming migration on %s\n", m->opt.incoming);
	mig_dest_set_stop_fd(sfd);	/* SIGTERM/SIGINT end a paused post-copy */
	p[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	while (poll(p, 2, -1) < 0 && errno == EINTR)
		;
	if (p[1].revents) {
		close(lfd);
		return err_set(err, -EINTR, "interrupted while waiting for a migration");
	}
	ret = mig_dest_receive(lfd, &m->vm, m->serial_fd, m->opt.memory_set ? &m->ram : NULL,
			       &st, err);
	close(lfd);
	if (ret && st.state == MIG_STATE_POSTCOPY_FAILED) {
		/*
		 * Post-copy lost its source: the guest ran here and its vCPUs
		 * wait for pages that will never come. It cannot be stopped
		 * cleanly nor resumed; leave at once (the kernel frees it all).
		 */
		fprintf(stderr, "tern-vmm: incoming migration failed in post-copy: %s; "
			"the VM is lost here\n", err->msg);
		if (m->opt.api_path)
			unlink(m->opt.api_path);	/* nothing answers on it now */
		_exit(EXIT_ERROR);
	}
	if (ret)
		err_prefix(err, "incoming migration failed");
	else
		log_info("vmm", "incoming migration done: %llu MiB in %llu ms",
			 (unsigned long long)(st.transferred >> 20),
			 (unsigned long long)st.elapsed_ms);
	return ret;
}

static int boot_vm(struct vmm *m, struct err *err)
{
	struct vm_config cfg = {
		.kernel_path = m->opt.kernel, .initrd_path = m->opt.initrd,
		.cmdline = m->opt.cmdline, .mem_size = m->opt.memory,
		.nr_vcpus = m->opt.vcpus, .serial_fd = m->serial_fd,
		.cpu_model = m->opt.cpu_model, .mem_prealloc = m->opt.mem_prealloc,
	};
	int ret = vm_create(&m->vm, &cfg, err);

	if (!ret)
		ret = vm_boot(&m->vm, &cfg, err);
	return ret;
}

/* --tls-*: load the identity once; both directions of migration use it. */
static int load_tls(struct vmm *m, struct err *err)
{
	if (!m->opt.tls_cert)
		return 0;
	m->tls = tls_ctx_new(m->opt.tls_cert, m->opt.tls_key, m->opt.tls_ca, err);
	if (!m->tls)
		return err->code ? err->code : -EINVAL;
	mig_dest_set_tls(m->tls);
	vmm_api_set_tls(m->tls);
	return 0;
}

static int vmm_run(struct vmm *m, struct err *err)
{
	int sfd = block_signals(), ret;

	if (sfd < 0)
		return err_set(err, -errno, "signalfd: %s", strerror(errno));
	ret = open_serial(m, err);
	if (!ret)
		ret = load_tls(m, err);
	if (ret)
		goto out;
	/* Claim the API socket first: a busy path must fail before a VM exists. */
	if (m->opt.api_path) {
		ret = vmm_api_start(&m->api, m->opt.api_path, &m->vm, err);
		if (ret)
			goto out;
	}
	ret = m->opt.incoming ? receive_vm(m, sfd, err) : boot_vm(m, err);
	if (ret) {
		vm_stop(&m->vm);
		goto out;
	}
	vmm_api_set_ready();
	if (m->opt.serial == SERIAL_STDIO)
		tty_raw(m);
	if (!m->opt.incoming)
		ret = vm_start(&m->vm, err);
	if (!ret)
		ret = event_loop(m, sfd);
	vmm_api_quiesce();	/* cancel or finish a running migration */
	vm_stop(&m->vm);
	tty_restore(m);
	if (m->vm.exit_reason == VM_EXIT_ERROR)
		err_set(err, -EIO, "%s", m->vm.exit_msg);
	else if (m->vm.exit_reason != VM_EXIT_NONE)
		log_info("vmm", "%s", m->vm.exit_msg);
out:
	ram_unmap(&m->ram);		/* unless a VM adopted it */
	if (m->api)
		api_server_stop(m->api);
	close(sfd);
	return ret;
}

/* --print-host-facts / --print-cpu-models: JSON on stdout. */
static int print_host(const struct vmm_options *o)
{
	struct host_config cfg = { 0 };
	const char *env = getenv("TERN_CPU_MODELS_ALLOWED");
	char csv[1024];
	struct err err = { 0 };
	json_t *j;

	str_copy(csv, sizeof(csv), env ? env : "");
	if (host_config_parse_allowed(&cfg, csv)) {
		fprintf(stderr, "tern-vmm: more than 32 allowed cpu models\n");
		return EXIT_USAGE;
	}
	j = o->print_cpu_models ? host_cpu_models_json() : host_facts_collect(&cfg, &err);
	if (!j) {
		fprintf(stderr, "tern-vmm: %s\n", err_msg(&err));
		return EXIT_ERROR;
	}
	json_dumpf(j, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(j);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static struct vmm m;
	struct err err = { 0 };
	int status;

	log_init_from_env();
	fault_init();			/* TERN_FAULT: a test facility */
	if (vmm_options_parse(argc, argv, &m.opt, &err)) {
		fprintf(stderr, "tern-vmm: %s (see tern-vmm --help)\n", err.msg);
		return EXIT_USAGE;
	}
	if (m.opt.help) {
		fputs(vmm_usage, stdout);
		return EXIT_OK;
	}
	if (m.opt.cpu_models_allowed)	/* vm_create() and the facts read it */
		setenv("TERN_CPU_MODELS_ALLOWED", m.opt.cpu_models_allowed, 1);
	if (m.opt.print_host_facts || m.opt.print_cpu_models)
		return print_host(&m.opt);
	if (m.opt.version) {
		printf("tern-vmm %s\n", TERN_VERSION);
		return EXIT_OK;
	}
	if (vmm_run(&m, &err) || err.code) {
		fprintf(stderr, "tern-vmm: %s\n", err.msg);
		status = EXIT_ERROR;
	} else {
		status = vmm_exit_status(&m.vm);
		if (m.vm.exit_reason == VM_EXIT_SIGNAL || m.vm.exit_reason == VM_EXIT_MIGRATED)
			fprintf(stderr, "tern-vmm: %s\n", m.vm.exit_msg);
	}
	vm_destroy(&m.vm);
	tls_ctx_free(m.tls);
	if (m.serial_fd > STDERR_FILENO)
		close(m.serial_fd);
	return status;
}
