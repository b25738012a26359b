/*
 * main.c - `ternd`, tern's per-host daemon:
 *
 *   ternd [--config FILE]
 *
 * Loads the configuration (default /etc/tern/ternd.conf; optional unless
 * --config names it), opens the event log, loads the VM definitions,
 * re-adopts the VMs whose tern-vmm still runs, serves the API and runs
 * until SIGTERM/SIGINT. Stopping ternd never stops a VM.
 */
#include "ternd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define DEFAULT_CONFIG "/etc/tern/ternd.conf"

static void usage(FILE *f)
{
	fputs("usage: ternd [--config FILE]\n"
	      "       ternd --help | --version\n\n"
	      "tern's per-host daemon: keeps this host's VMs (one tern-vmm each),\n"
	      "serves the API on a unix socket and on TCP, migrates VMs peer to peer.\n"
	      "  --config FILE  key = value configuration (default " DEFAULT_CONFIG
	      ", optional)\n\nSee docs/ternd.md for every key and its default.\n", f);
}

static int make_dirs(struct ternd *d, struct err *err)
{
	char p[PATH_MAX];
	const char *dirs[] = { d->cfg.state_dir, d->cfg.run_dir };

	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(p, sizeof(p), "%s", dirs[i]);
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return err_set(err, -errno, "cannot create %s: %s", p, strerror(errno));
		snprintf(p, sizeof(p), "%s/vms", dirs[i]);
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return err_set(err, -errno, "cannot create %s: %s", p, strerror(errno));
	}
	return 0;
}

static int parse_args(int argc, char **argv, const char **config)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
			printf("ternd %s\n", TERN_VERSION);
			exit(0);
		} else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
			*config = argv[++i];
		} else {
			fprintf(stderr, "ternd: unexpected argument '%s' (see ternd --help)\n",
				argv[i]);
			return 2;
		}
	}
	return 0;
}

/* Every bad line of the configuration, one per line on stderr. */
static void print_config_errors(const char *path, json_t *errors)
{
	size_t i;
	json_t *e;

	json_array_foreach(errors, i, e)
		fprintf(stderr, "ternd: %s:%" JSON_INTEGER_FORMAT ": %s%s%s\n", path,
			json_integer_value(json_object_get(e, "line")),
			json_string_value(json_object_get(e, "field")),
			*json_string_value(json_object_get(e, "field")) ? ": " : "",
			json_string_value(json_object_get(e, "error")));
}

static int setup(struct ternd *d, const char *config, struct err *err)
{
	const char *path = config ? config : DEFAULT_CONFIG;
	json_t *errors = json_array();
	int ret;

	ternd_config_defaults(&d->cfg);
	ret = ternd_config_load(&d->cfg, path, config != NULL, errors, err);
	if (json_array_size(errors) > 1)
		print_config_errors(path, errors);
	json_decref(errors);
	if (!ret && d->cfg.listen[0] && !d->cfg.n_tokens && !d->cfg.peer_token[0] &&
	    !d->cfg.tls_peers[0] && !d->cfg.tls_admins[0] && !d->cfg.tls_viewers[0])
		log_warn("ternd", "listen = %s but no token or peer_token: every TCP client will be refused",
			 d->cfg.listen);
	if (!ret)
		ret = ternd_config_finish(&d->cfg, err);
	if (!ret)
		ret = make_dirs(d, err);
	if (!ret)
		ret = ternd_events_open(d, err);
	if (!ret)
		ret = ternd_vm_load_all(d, err);
	return ret;
}

int main(int argc, char **argv)
{
	static struct ternd d;
	const char *config = NULL;
	struct err err = { 0 };
	struct ternd_http *http;
	pthread_t monitor;
	sigset_t set;
	int sig, ret;

	log_init_from_env();
	ret = parse_args(argc, argv, &config);
	if (ret)
		return ret;
	pthread_mutex_init(&d.lock, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (setup(&d, config, &err)) {
		fprintf(stderr, "ternd: %s\n", err_msg(&err));
		return 1;
	}
	ternd_adopt_all(&d);
	http = ternd_http_start(&d, &err);
	if (!http) {
		fprintf(stderr, "ternd: %s\n", err_msg(&err));
		return 1;
	}
	ternd_event(&d, NULL, "ternd_started", "ternd %s on %s (cluster %s)",
		    TERN_VERSION, d.cfg.host, d.cfg.cluster);
	pthread_create(&monitor, NULL, ternd_monitor, &d);
	do
		sigwait(&set, &sig);
	while (sig == SIGHUP);
	d.stopping = true;
	ternd_event(&d, NULL, "ternd_stopped", "signal %d; VMs keep running", sig);
	ternd_http_stop(http);
	pthread_join(monitor, NULL);
	ternd_events_close(&d);
	return 0;
}
