package rmq

// This file holds the //export of the transaction producer's callbacks, so its preamble may
// only declare (cgo rule); the C side of the trampolines is in transaction.go.

/*
#include <stdint.h>
#include "rmq.h"
*/
import "C"

import "runtime/cgo"

// rmqGoCheckTransaction receives every check of every transaction producer, on one of that
// producer's check threads ("rmq-txn-check-N"). The message is borrowed until it returns, so it
// is copied before the checker runs. It never panics back into C: a panic in the checker (or
// while copying) is recovered and answered as TransactionUnknown, so the broker asks again.
//
//export rmqGoCheckTransaction
func rmqGoCheckTransaction(msg *C.rmq_received_message_t, handle C.uintptr_t) (state C.rmq_transaction_state_t) {
	state = C.RMQ_TRANSACTION_UNKNOWN
	defer func() {
		if r := recover(); r != nil {
			state = C.RMQ_TRANSACTION_UNKNOWN
		}
	}()
	p := cgo.Handle(handle).Value().(*TransactionProducer)
	m, err := copyReceived(msg)
	if err != nil {
		return C.RMQ_TRANSACTION_UNKNOWN
	}
	return C.rmq_transaction_state_t(p.checker(m))
}

// rmqGoLocalTransaction runs the local transaction of one SendInTransaction, on the thread
// that called it. A panic is recovered and counts as TransactionUnknown.
//
//export rmqGoLocalTransaction
func rmqGoLocalTransaction(result *C.rmq_send_result_t, handle C.uintptr_t) (state C.rmq_transaction_state_t) {
	state = C.RMQ_TRANSACTION_UNKNOWN
	defer func() {
		if r := recover(); r != nil {
			state = C.RMQ_TRANSACTION_UNKNOWN
		}
	}()
	call := cgo.Handle(handle).Value().(*localCall)
	res, err := copySendResult(result)
	if err != nil {
		return C.RMQ_TRANSACTION_UNKNOWN
	}
	return C.rmq_transaction_state_t(call.execute(call.msg, res, call.arg))
}
