/* relay_cmd: `natclient relay PEER`, a diagnostic for the TURN client:
 * allocate on the server, permit (or bind a channel to) PEER, then stdin
 * lines go to PEER through the relay and PEER's datagrams come out. */
#ifndef NATCLIENT_RELAY_CMD_H
#define NATCLIENT_RELAY_CMD_H

#include <stdbool.h>

#include "settings.h"

/* Returns the process exit status (0, 1 failure, 2 usage). */
int relay_cmd(int argc, char **argv, struct settings *s, bool json, int verbose);

#endif
