package rmq

//go:generate go run ../internal/gen -o status_gen.go

/*
#include "rmq.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// Error is a failure reported by the library (or, for arguments it cannot pass to C such as
// strings with NUL bytes, by this package with the status the library uses for the case).
//
// Compare Status with the Status* constants, or use errors.Is with the Err* sentinels:
//
//	var e *rmq.Error
//	if errors.As(err, &e) && e.Status == rmq.StatusInvalidState { ... }
//	if errors.Is(err, rmq.ErrInvalidState) { ... }
type Error struct {
	// Status is the rmq_status_t, one of the Status* constants (or an unlisted broker code).
	Status int
	// Name is the library's name of Status, e.g. "RMQ_ERR_TIMEOUT".
	Name string
	// Message is the library's description of this failure (rmq_last_error_message()).
	Message string
	// BrokerCode is the broker's own response code when a broker refused the call (any code,
	// also those outside 1..9999 that are StatusBrokerOther), else 0.
	BrokerCode int
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("rmq: %s (%d)", e.Name, e.Status)
	}
	return fmt.Sprintf("rmq: %s (%d): %s", e.Name, e.Status, e.Message)
}

// Is reports whether target is an *Error with the same Status, so that
// errors.Is(err, rmq.ErrTimeout) matches any timeout whatever its message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && e != nil && t.Status == e.Status
}

// Retriable reports whether trying the same call again (later, or on another broker) may
// succeed, as the library judges it (rmq_status_is_retriable).
func (e *Error) Retriable() bool { return bool(C.rmq_status_is_retriable(C.rmq_status_t(e.Status))) }

// IsBrokerError reports whether the status is a broker's answer (RMQ_ERR_BROKER_BASE + code).
func (e *Error) IsBrokerError() bool {
	return e.Status > C.RMQ_ERR_BROKER_BASE && e.Status <= C.RMQ_ERR_BROKER_OTHER
}

// ResponseCode is the broker's own response code of a broker error: BrokerCode, which the
// library keeps also for StatusBrokerOther (codes outside 1..9999), else Status -
// RMQ_ERR_BROKER_BASE. It is 0 if IsBrokerError is false.
func (e *Error) ResponseCode() int {
	if !e.IsBrokerError() {
		return 0
	}
	if e.BrokerCode != 0 {
		return e.BrokerCode
	}
	if e.Status == C.RMQ_ERR_BROKER_OTHER {
		return 0
	}
	return e.Status - C.RMQ_ERR_BROKER_BASE
}

// IsRetriable reports whether err is an *Error whose status is retriable.
func IsRetriable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retriable()
}

// StatusName is the library's name of a status ("RMQ_ERR_TIMEOUT"); "RMQ_ERR_UNKNOWN" if unlisted.
func StatusName(status int) string { return C.GoString(C.rmq_status_name(C.rmq_status_t(status))) }

// StatusDescription is the library's description of a status.
func StatusDescription(status int) string {
	return C.GoString(C.rmq_status_str(C.rmq_status_t(status)))
}

// StatusDesc is one row of the library's status table.
type StatusDesc struct {
	Status      int
	Name        string
	Description string
	Retriable   bool
}

// StatusDescs returns the library's status table (rmq_status_descs), in the library's order.
func StatusDescs() []StatusDesc {
	var n C.size_t
	rows := C.rmq_status_descs(&n)
	out := make([]StatusDesc, 0, int(n))
	for _, r := range unsafeSlice(rows, n) {
		out = append(out, StatusDesc{
			Status:      int(r.status),
			Name:        C.GoString(r.name),
			Description: C.GoString(r.description),
			Retriable:   bool(C.rmq_status_is_retriable(r.status)),
		})
	}
	return out
}

// statusRow pairs a generated constant with the library name it was generated from.
type statusRow struct {
	Status int
	Name   string
}
