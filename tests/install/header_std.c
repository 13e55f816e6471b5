/* The installed header alone compiles in every language mode users build with. */
#include "rmq.h"

int main(void) {
    rmq_status_t status = RMQ_OK;
    return (rmq_version_number() == RMQ_VERSION_NUMBER && status == RMQ_OK) ? 0 : 1;
}
