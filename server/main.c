/*
 * main.c - mxd(8): flags, configuration, start-up, the loop, exit.
 *
 * Start-up order: defaults, the config file, flags; check the whole
 * (--check stops here); take the sockets systemd passed and its
 * notification socket (sd.c); then the supervisor (supervisor.c) checks
 * the root rule (privdrop.c), binds the listeners and the metrics
 * listener, starts the workers (each opens the Maildir or the capture
 * directory, loads the certificates, then drops root) and prints a
 * "metrics ADDR:PORT" line when metrics_listen is set and one
 * "listening ADDR:PORT" line per listener on stdout once they all serve
 * (for scripts and harnesses, which may ask for port 0).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "privdrop.h"
#include "sd.h"
#include "supervisor.h"
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
"      --workers N        worker processes, 1..64 (0: one per CPU online)\n"
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

/* What a config is made of: the file, then the flags, in order. */
struct sources {
	const char	*file;
	char		**flags;
	int		 nflags;
};

/* The whole config from its sources; at start and on SIGHUP. */
static int
load_config(struct config *cfg, void *arg, char *err, size_t errlen)
{
	const struct sources *src = arg;
	uid_t uid;
	gid_t gid;
	int i;

	config_init(cfg);
	if (src->file != NULL &&
	    config_load_file(cfg, src->file, err, errlen) != 0)
		return -1;
	for (i = 0; i < src->nflags; i += 2)
		if (config_set(cfg, CONFIG_SRC_CMDLINE, src->flags[i],
		    src->flags[i + 1], err, errlen) != 0)
			return -1;
	if (config_finish(cfg, err, errlen) != 0)
		return -1;
	/* user and group must exist, for --check and for a reload. */
	return privdrop_lookup(cfg, &uid, &gid, err, errlen);
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
		{ "workers", required_argument, NULL, 'W' },
		{ "allow-root", no_argument, NULL, 'R' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config cfg;
	struct supervisor_opts so;
	struct sources src;
	struct sd_listen inherited;
	const char *config_file = NULL;
	char err[1024], *eq;
	int ch, check = 0, rc = 1, print_cert = 0;
	/* Flags are applied after the file: remember them in order. */
	char **flags;
	int nflags = 0;

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
		case 'W': flags[nflags++] = "workers"; flags[nflags++] = optarg;
			break;
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
	src.file = config_file;
	src.flags = flags;
	src.nflags = nflags;
	if (load_config(&cfg, &src, err, sizeof(err)) != 0) {
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
	 * systemd's sockets and notification socket belong to the process
	 * it started: the supervisor, which outlives every worker.
	 */
	sd_notify_init();
	if (sd_listen_collect(&inherited, err, sizeof(err)) != 0) {
		fprintf(stderr, "mxd: %s\n", err);
		goto out;
	}
	memset(&so, 0, sizeof(so));
	so.load = load_config;
	so.arg = &src;
	so.print_cert = print_cert;
	so.inherited = &inherited;
	rc = supervisor_run(&cfg, &so);

out:
	sd_listen_finish(&inherited);
	free(flags);
	config_free(&cfg);
	return rc;
}
