#include "stun_msg.h"
int natkit_placeholder_unused(void);
