/* stund: STUN/TURN server and rendezvous point.
 * main: options, configuration, then the server (server.c) until SIGTERM. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"

int main(int argc, char **argv)
{
	char err[CFG_ERR_MAX], desc[1024];
	struct config_args args;
	struct config *cfg = NULL;
	int r;

	if (config_args_parse(&args, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "stund: %s\n", err);
		config_args_free(&args);
		return 2;
	}
	if (args.help || args.version) {
		if (args.help)
			config_print_help(stdout);
		else
			printf("stund %s\n", NATKIT_VERSION);
		config_args_free(&args);
		return 0;
	}
	r = config_load(&args, &cfg, err, sizeof(err));
	if (r) {
		fprintf(stderr, "stund: configuration error: %s\n", err);
		config_args_free(&args);
		return 1;
	}
	config_describe(cfg, desc, sizeof(desc));
	if (args.check_config) {
		printf("stund: configuration OK: %s: %s\n", args.conf_path ? args.conf_path : "(no file)", desc);
		config_put(cfg);
		config_args_free(&args);
		return 0;
	}
	fprintf(stderr, "stund: serving is not built yet\n");
	config_put(cfg);
	config_args_free(&args);
	return 1;
}
