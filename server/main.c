/* stund: STUN/TURN server and rendezvous point. (skeleton; see server issue) */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--version")) {
			printf("stund %s\n", NATKIT_VERSION);
			return 0;
		}
	}
	printf("usage: stund -c FILE [--check-config] [--KEY VALUE ...]\n");
	return 0;
}
