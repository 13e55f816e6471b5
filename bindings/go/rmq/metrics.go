package rmq

/*
#include <stdlib.h>
#include "rmq.h"
*/
import "C"

import "unsafe"

// MetricsText returns every metric of the process in the Prometheus text exposition format
// (serve it as "text/plain; version=0.0.4"). Counters count from the start of the process, over
// all of its producers and consumers; labels are topic and broker (consume families also group,
// the lag also queue). Families: rmq_messages_sent_total, rmq_bytes_sent_total,
// rmq_send_errors_total, rmq_send_retries_total, rmq_sends_in_flight,
// rmq_send_latency_seconds (histogram), rmq_messages_consumed_total, rmq_bytes_consumed_total,
// rmq_consume_failures_total, rmq_consume_lag and rmq_trace_records_dropped_total.
func MetricsText() (string, error) {
	var needed C.size_t
	capacity := C.size_t(16384)
	for {
		buf := (*C.char)(C.malloc(capacity))
		if buf == nil {
			return "", newError(StatusResource, "cannot allocate the metrics buffer")
		}
		err := call(func() C.rmq_status_t { return C.rmq_metrics_prometheus(buf, capacity, &needed) })
		if err == nil {
			s := C.GoStringN(buf, C.int(needed))
			C.free(unsafe.Pointer(buf))
			return s, nil
		}
		C.free(unsafe.Pointer(buf))
		if e, ok := err.(*Error); !ok || e.Status != StatusBufferTooSmall {
			return "", err
		}
		capacity = needed + 4096 // series may be added meanwhile
	}
}

// MetricsValue returns the value of the family name (or "rmq_send_latency_seconds_count") for
// topic, summed over brokers, groups and queues; or over those of broker only when broker is
// not "". 0 for a topic nothing happened to; StatusInvalidArgument for an unknown name.
func MetricsValue(name, topic, broker string) (uint64, error) {
	cName, err := cString("name", name)
	if err != nil {
		return 0, err
	}
	cTopic, err := cString("topic", topic)
	if err != nil {
		return 0, err
	}
	var cBroker *C.char
	if broker != "" {
		if cBroker, err = cString("broker", broker); err != nil {
			return 0, err
		}
	}
	var out C.uint64_t
	err = call(func() C.rmq_status_t { return C.rmq_metrics_value(cName, cTopic, cBroker, &out) })
	return uint64(out), err
}

// TraceRecordsDropped is the number of message trace records dropped because a trace queue
// was full (client.trace-enabled): tracing drops rather than slow sends down.
func TraceRecordsDropped() uint64 { return uint64(C.rmq_trace_dropped()) }
