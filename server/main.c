/*
 * main.c - mxd(8): flags, configuration, start-up, the loop, exit.
 *
 * Start-up order: defaults, the config file, flags; check the whole
 * (--check stops here); open the Maildir (or the capture directory)
 * and the listeners; print one "listening ADDR:PORT" line per listener
 * on stdout (for scripts and harnesses, which may ask for port 0),
 * after a "metrics ADDR:PORT" line when metrics_listen is set; log
 * the start line; tell systemd (sd.c) we are ready; run.
 *
 * As root with user (privdrop.c): everything up to the listeners and
 * the certificate keys happens as root, then root is dropped before the
 * loop runs.  Sockets passed by systemd replace the binds (sd.c).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "privdrop.h"
#include "sd.h"
#include "server.h"
#include "tls.h"

#ifndef MXD_VERSION
#define MXD_VERSION "unknown"
#endif

static void
usage(FILE *f)
{
	fprintf(f,
"usage: mxd [options]\n"
"\n"
"mxd is an inbound SMTP server (an MX receiver).  With no options it\n"
"listens on 127.0.0.1:2525, accepts mail for any domain, and stores\n"
"each message in the Maildir ./mail.\n"
"\n"
"options:\n"
"  -c, --config FILE      read the configuration file FILE (INI)\n"
"  -n, --check            check the configuration, then exit\n"
"  -l, --listen ADDR:PORT listen here, repeatable (port 0: any free port)\n"
"      --metrics-listen ADDR:PORT\n"
"                         serve Prometheus metrics over HTTP here\n"
"                         (-o metrics_listen=ADDR:PORT; port 0: any free)\n"
"  -d, --domain DOMAIN    accept mail for DOMAIN, repeatable\n"
"  -m, --maildir PATH     store mail in this Maildir (%%d, %%l: per recipient)\n"
"      --capture DIR      store each message as DIR/ID.eml and DIR/ID.json\n"
"                         (-o delivery=capture -o capture_dir=DIR; for tests)\n"
"      --fault RULE       inject a fault, repeatable (docs/harness.md; for tests)\n"
"  -H, --hostname NAME    our name in the greeting and Received headers\n"
"      --tls-cert FILE    PEM certificate (chain), repeatable, paired in order\n"
"      --tls-key FILE     PEM key for the --tls-cert at the same position\n"
"      --allow-root       serve as root on a public address (-o allow_root=yes)\n"
"      --print-cert-path  print \"certificate PATH\" for each certificate in use\n"
"                         on stdout at start (e.g. the self-signed one, for\n"
"                         a test to trust)\n"
"  -o KEY=VALUE           set any configuration key, repeatable\n"
"  -v, --verbose          log at debug level (-o log_level=debug)\n"
"  -V, --version          print the version and exit\n"
"  -h, --help             print this help and exit\n"
"\n"
"Flags and -o override the file.  For the repeatable keys (listen, domain,\n"
"tls_cert, tls_key) the command line's values replace the file's list.\n"
"Configuration keys (mxd.conf(5)):\n");
	config_print_keys(f);
}

static void
on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	sd_notify("STOPPING=1");
	server_shutdown(w->data);
}

static void
on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct timespec ts;
	char state[80];

	/* systemd wants the reload's start on CLOCK_MONOTONIC. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000);
	sd_notify(state);
	server_reload_tls(w->data);
	sd_notify("READY=1");
}

static int
set_flag(struct config *cfg, const char *key, const char *val)
{
	char err[512];

	if (config_set(cfg, CONFIG_SRC_CMDLINE, key, val, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "mxd: %s\n", err);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "metrics-listen", required_argument, NULL, 'M' },
		{ "domain", required_argument, NULL, 'd' },
		{ "maildir", required_argument, NULL, 'm' },
		{ "capture", required_argument, NULL, 'A' },
		{ "fault", required_argument, NULL, 'F' },
		{ "hostname", required_argument, NULL, 'H' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "print-cert-path", no_argument, NULL, 'P' },
		{ "allow-root", no_argument, NULL, 'R' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config cfg;
	struct server srv;
	struct sd_listen inherited;
	uid_t uid;
	gid_t gid;
	const char *config_file = NULL;
	char err[1024], *eq;
	int ch, check = 0, rc = 1, print_cert = 0;
	size_t i;
	/* Flags are applied after the file: remember them in order. */
	char **flags;
	int nflags = 0;

	memset(&srv, 0, sizeof(srv));
	memset(&inherited, 0, sizeof(inherited));
	/* Two entries per flag, four for --capture (two keys). */
	flags = calloc((size_t)argc * 4 + 2, sizeof(*flags));
	if (flags == NULL)
		return 1;
	config_init(&cfg);
	while ((ch = getopt_long(argc, argv, "c:nl:d:m:H:o:vVh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c': config_file = optarg; break;
		case 'n': check = 1; break;
		case 'l': flags[nflags++] = "listen"; flags[nflags++] = optarg;
			break;
		case 'M': flags[nflags++] = "metrics_listen";
			flags[nflags++] = optarg;
			break;
		case 'd': flags[nflags++] = "domain"; flags[nflags++] = optarg;
			break;
		case 'm': flags[nflags++] = "maildir"; flags[nflags++] = optarg;
			break;
		case 'A': flags[nflags++] = "delivery";
			flags[nflags++] = "capture";
			flags[nflags++] = "capture_dir";
			flags[nflags++] = optarg;
			break;
		case 'F': flags[nflags++] = "fault"; flags[nflags++] = optarg;
			break;
		case 'H': flags[nflags++] = "hostname";
			flags[nflags++] = optarg;
			break;
		case 'C': flags[nflags++] = "tls_cert";
			flags[nflags++] = optarg;
			break;
		case 'K': flags[nflags++] = "tls_key";
			flags[nflags++] = optarg;
			break;
		case 'P': print_cert = 1; break;
		case 'R': flags[nflags++] = "allow_root";
			flags[nflags++] = "yes";
			break;
		case 'v': flags[nflags++] = "log_level";
			flags[nflags++] = "debug";
			break;
		case 'o':
			eq = strchr(optarg, '=');
			if (eq == NULL) {
				fprintf(stderr, "mxd: -o %s: expected "
				    "KEY=VALUE\n", optarg);
				rc = 2;
				goto out;
			}
			*eq = 0;
			flags[nflags++] = optarg;
			flags[nflags++] = eq + 1;
			break;
		case 'V':
			printf("mxd %s (mbedTLS %s)\n", MXD_VERSION,
			    tls_library_version());
			rc = 0;
			goto out;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mxd: unexpected argument '%s'\n",
		    argv[optind]);
		rc = 2;
		goto out;
	}
	if (config_file != NULL &&
	    config_load_file(&cfg, config_file, err, sizeof(err)) != 0) {
		fprintf(stderr, "mxd: %s\n", err);
		goto out;
	}
	for (ch = 0; ch < nflags; ch += 2)
		if (set_flag(&cfg, flags[ch], flags[ch + 1]) != 0)
			goto out;
	if (config_finish(&cfg, err, sizeof(err)) != 0 ||
	    privdrop_lookup(&cfg, &uid, &gid, err, sizeof(err)) != 0) {
		fprintf(stderr, "mxd: %s\n", err);
		goto out;
	}
	if (check) {
		printf("mxd: configuration ok\n");
		rc = 0;
		goto out;
	}

	log_setup(cfg.log_level, cfg.log_format);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * systemd first (its sockets count for the root rule), the rule
	 * before any bind; then bind and read the keys as root; then drop
	 * root before the first client (privdrop.c).
	 */
	sd_notify_init();
	if (sd_listen_collect(&inherited, err, sizeof(err)) != 0 ||
	    privdrop_root_check(&cfg, &inherited, err, sizeof(err)) != 0 ||
	    privdrop_prepare(&cfg, err, sizeof(err)) != 0 ||
	    server_setup(&srv, &cfg, ev_default_loop(EVFLAG_AUTO), print_cert,
	    err, sizeof(err)) != 0 || (srv.inherited = &inherited,
	    server_listen(&srv, err, sizeof(err))) != 0 ||
	    privdrop(&cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "mxd: %s\n", err);
		goto out;
	}
	ev_signal_init(&srv.sigterm, on_signal, SIGTERM);
	ev_signal_init(&srv.sigint, on_signal, SIGINT);
	ev_signal_init(&srv.sighup, on_sighup, SIGHUP);
	srv.sigterm.data = srv.sigint.data = srv.sighup.data = &srv;
	ev_signal_start(srv.loop, &srv.sigterm);
	ev_signal_start(srv.loop, &srv.sigint);
	ev_signal_start(srv.loop, &srv.sighup);

	/* Before the listening lines, which a harness reads up to. */
	if (metrics_http_bound(&srv) != NULL)
		printf("metrics %s\n", metrics_http_bound(&srv));
	for (i = 0; i < srv.nlisteners; i++)
		printf("listening %s\n", srv.listeners[i].bound);
	fflush(stdout);
	server_log_start(&srv);
	sd_notify("READY=1");

	ev_run(srv.loop, 0);
	rc = 0;
	{
		struct logline l;

		log_begin(&l, LOG_INFO, NULL, "stop");
		log_uint(&l, "connections", srv.stats.connections);
		log_uint(&l, "pregreet", srv.stats.pregreet);
		log_uint(&l, "http_requests", srv.stats.http_requests);
		log_uint(&l, "floods", srv.stats.floods);
		log_uint(&l, "rate_limited", srv.stats.rate_limited);
		log_uint(&l, "slow_data", srv.stats.slow_data);
		log_uint(&l, "proxy_untrusted", srv.stats.proxy_untrusted);
		log_uint(&l, "proxy_missing", srv.stats.proxy_missing);
		log_uint(&l, "proxy_bad", srv.stats.proxy_bad);
		log_uint(&l, "proxy_health", srv.stats.proxy_health);
		if (cfg.nfaults != 0)
			log_uint(&l, "faults", srv.stats.faults);
		log_end(&l);
	}

out:
	if (srv.loop != NULL) {
		ev_signal_stop(srv.loop, &srv.sigterm);
		ev_signal_stop(srv.loop, &srv.sigint);
		ev_signal_stop(srv.loop, &srv.sighup);
	}
	server_teardown(&srv);
	sd_listen_finish(&inherited);
	free(flags);
	config_free(&cfg);
	return rc;
}
