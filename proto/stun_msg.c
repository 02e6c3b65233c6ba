#include "stun_msg.h"
int natkit_placeholder_unused(void);
int natkit_placeholder_unused(void) { return 0; }
