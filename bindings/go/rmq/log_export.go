package rmq

/*
#include "rmq.h"
*/
import "C"

import "unsafe"

//export rmqGoLog
func rmqGoLog(record *C.rmq_log_record_t, _ unsafe.Pointer) {
	deliverLog(record.level, C.GoString(record.target), C.GoString(record.message))
}
