/* natclient: NAT discovery and peer-to-peer connections. (skeleton) */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--version")) {
			printf("natclient %s\n", NATKIT_VERSION);
			return 0;
		}
	}
	printf("usage: natclient [--server HOST[:PORT]] [--config FILE] [--json] [-v] COMMAND\n");
	return 0;
}
