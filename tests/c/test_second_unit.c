/* A second translation unit including the header: catches definitions that would collide at
 * link time and a header that is not self-contained. */
#include "rmq.h"

int other_translation_unit_version(void) { return (int)RMQ_VERSION_NUMBER; }
