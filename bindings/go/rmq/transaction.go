package rmq

/*
#include <stdint.h>
#include "rmq.h"

// Defined in transaction_export.go (//export), with the exact C types cgo gives them there.
extern rmq_transaction_state_t rmqGoCheckTransaction(rmq_received_message_t *msg, uintptr_t handle);
extern rmq_transaction_state_t rmqGoLocalTransaction(rmq_send_result_t *result, uintptr_t handle);

static rmq_transaction_state_t rmq_go_check_trampoline(const rmq_received_message_t *msg,
                                                       void *user_data) {
	return rmqGoCheckTransaction((rmq_received_message_t *)msg, (uintptr_t)user_data);
}

static rmq_transaction_state_t rmq_go_local_trampoline(const rmq_message_t *msg,
                                                       const rmq_send_result_t *result, void *arg) {
	(void)msg; // the Go side hands the caller's own *Message to the local transaction
	return rmqGoLocalTransaction((rmq_send_result_t *)result, (uintptr_t)arg);
}

static rmq_status_t rmq_go_txn_create(const rmq_config_t *config, uintptr_t handle,
                                      rmq_transaction_producer_t **out) {
	return rmq_transaction_producer_create(config, rmq_go_check_trampoline, (void *)handle, out);
}

static rmq_status_t rmq_go_txn_send(rmq_transaction_producer_t *producer, const rmq_message_t *msg,
                                    uintptr_t handle, rmq_transaction_state_t *state,
                                    rmq_send_result_t **result) {
	return rmq_transaction_producer_send(producer, msg, rmq_go_local_trampoline, (void *)handle,
	                                     state, result);
}
*/
import "C"

import (
	"runtime"
	"runtime/cgo"
	"sync"
)

// TransactionState is how a local transaction ended: what a LocalTransaction and a
// TransactionChecker return.
type TransactionState int32

// Transaction states (rmq_transaction_state_t).
const (
	// TransactionCommit: the message is delivered.
	TransactionCommit TransactionState = C.RMQ_TRANSACTION_COMMIT
	// TransactionRollback: the message is dropped, never delivered.
	TransactionRollback TransactionState = C.RMQ_TRANSACTION_ROLLBACK
	// TransactionUnknown: not known yet; the broker asks the checker later. Any other value
	// counts as this.
	TransactionUnknown TransactionState = C.RMQ_TRANSACTION_UNKNOWN
)

// String is Java's name of the state: "COMMIT_MESSAGE", "ROLLBACK_MESSAGE" or "UNKNOW".
func (s TransactionState) String() string {
	return C.GoString(C.rmq_transaction_state_name(C.rmq_transaction_state_t(s)))
}

// TransactionChecker answers a broker that asks about a transaction of the producer's group
// whose end it did not get (the producer that sent it may have died). msg is the half message;
// msg.MsgID is the transaction id. It runs on the producer's own threads ("rmq-txn-check-N",
// producer.transaction-check-threads of them, several at once with more than one). A panic is
// recovered and answered as TransactionUnknown: the broker asks again later.
type TransactionChecker func(msg *ReceivedMessage) TransactionState

// LocalTransaction runs the local transaction of one SendInTransaction, on the calling
// goroutine, after the broker stored the half message: msg is the message given to
// SendInTransaction, result the half message's send result (result.TransactionID is the
// transaction id), arg the value given to SendInTransaction. A panic is recovered and counts
// as TransactionUnknown.
type LocalTransaction func(msg *Message, result *SendResult, arg any) TransactionState

// TransactionSendResult is the outcome of SendInTransaction.
type TransactionSendResult struct {
	// State is how the transaction ended here (TransactionUnknown: the checker settles it).
	State TransactionState
	// SendResult is the half message's send result; its TransactionID is always set.
	*SendResult
}

type localCall struct {
	execute LocalTransaction
	msg     *Message
	arg     any
}

// TransactionProducer sends transactional messages (Java's TransactionMQProducer). Create it
// with NewTransactionProducer, Start it, Close it when done. Methods may be called from any
// goroutine.
type TransactionProducer struct {
	mu      sync.RWMutex
	h       *C.rmq_transaction_producer_t
	closed  bool
	self    cgo.Handle
	checker TransactionChecker
}

// NewTransactionProducer creates a transaction producer from configuration values keyed by the
// library's keys ("name-server" and "producer.group" required;
// producer.transaction-check-threads sets the checker's threads). checker must not be nil.
func NewTransactionProducer(config map[string]string, checker TransactionChecker) (*TransactionProducer, error) {
	if checker == nil {
		return nil, invalidArgument("checker is nil")
	}
	p := &TransactionProducer{checker: checker}
	p.self = cgo.NewHandle(p)
	err := withConfig(config, func(cfg *C.rmq_config_t) C.rmq_status_t {
		return C.rmq_go_txn_create(cfg, C.uintptr_t(p.self), &p.h)
	})
	if err != nil {
		p.self.Delete()
		return nil, err
	}
	return p, nil
}

func errTransactionProducerClosed() *Error {
	return newError(StatusInvalidHandle, "transaction producer is closed")
}

func (p *TransactionProducer) use(f func(h *C.rmq_transaction_producer_t) error) error {
	if p == nil {
		return invalidArgument("transaction producer is nil")
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errTransactionProducerClosed()
	}
	return f(p.h)
}

// Start starts the producer; from then on brokers may call the checker. Starting twice, or
// after Shutdown, fails with StatusInvalidState.
func (p *TransactionProducer) Start() error {
	return p.use(func(h *C.rmq_transaction_producer_t) error {
		return call(func() C.rmq_status_t { return C.rmq_transaction_producer_start(h) })
	})
}

// SendInTransaction sends msg as a half message and waits for the broker to store it, calls
// execute(msg, result, arg) on this goroutine, and ends the transaction as it returns:
// TransactionCommit delivers the message, TransactionRollback drops it, TransactionUnknown
// leaves it to the checker. On an error the half message was not stored and execute did not
// run. While it runs, msg must not be modified or closed by another goroutine (execute may
// read it). A message with a delay is refused (StatusInvalidArgument). execute must not be
// nil.
func (p *TransactionProducer) SendInTransaction(msg *Message, execute LocalTransaction, arg any) (*TransactionSendResult, error) {
	if execute == nil {
		return nil, invalidArgument("execute is nil")
	}
	var res *TransactionSendResult
	err := p.use(func(ph *C.rmq_transaction_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			h := cgo.NewHandle(&localCall{execute: execute, msg: msg, arg: arg})
			defer h.Delete()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var state C.rmq_transaction_state_t
			var r *C.rmq_send_result_t
			if err := check(C.rmq_go_txn_send(ph, mh, C.uintptr_t(h), &state, &r)); err != nil {
				return err
			}
			defer C.rmq_send_result_destroy(r)
			sent, err := copySendResult(r)
			if err != nil {
				return err
			}
			res = &TransactionSendResult{State: TransactionState(state), SendResult: sent}
			return nil
		})
	})
	return res, err
}

// Shutdown stops the producer: no checker call starts afterwards; it unregisters from the
// brokers. Idempotent. Close still has to be called.
func (p *TransactionProducer) Shutdown() error {
	return p.use(func(h *C.rmq_transaction_producer_t) error {
		return call(func() C.rmq_status_t { return C.rmq_transaction_producer_shutdown(h) })
	})
}

// Close shuts the producer down if needed, waits until a checker call still running has
// returned (no checker call runs after Close returns) and frees it. Idempotent. From the
// producer's own checker it would wait for itself: it fails with StatusInvalidState and the
// producer stays open. A second Close while the first waits returns nil at once.
func (p *TransactionProducer) Close() error {
	if p == nil {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	if st := C.rmq_transaction_producer_destroy(p.h); st != C.RMQ_OK {
		err := lastError(st)
		p.mu.Lock()
		p.closed = false
		p.mu.Unlock()
		return err
	}
	p.self.Delete()
	return nil
}
