// Package rmq is a thin Go wrapper over the C ABI of rmq, an Apache RocketMQ client whose core
// is written in Rust (include/rmq.h).
//
// The C header ships inside this package (rmq.h). The library is linked statically from
// lib/<GOOS>_<GOARCH>/librmq.a inside the package, which `make go-lib` in the rmq repository
// builds (or `go generate` here); no LD_LIBRARY_PATH is needed at run time. With the build tag
// rmq_dynamic the package links the installed shared library instead, found through pkg-config
// (`make install` puts rmq.pc there). See link_static.go and link_dynamic.go.
//
// Semantics are those of the C ABI:
//
//   - Every failure is an *Error carrying the library's status (see the Status* constants,
//     generated from rmq_status_descs()) and its message (rmq_last_error_message()).
//     errors.Is(err, rmq.ErrInvalidState) and errors.As(err, &rmqErr) both work.
//   - Configuration uses the library's string keys (ConfigKeys lists them).
//   - A Message owns a C message; a Producer owns a C producer. Both must be closed; a Message
//     also has a finalizer as a safety net. Use after Close returns an error, never a crash.
//   - Producer methods may be called from any goroutine, concurrently.
package rmq

/*
#cgo CFLAGS: -I${SRCDIR}
#include "rmq.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"
)

// Version is the version string of the linked library, e.g. "0.1.0".
func Version() string { return C.GoString(C.rmq_version()) }

// VersionNumber is MAJOR*1000000 + MINOR*1000 + PATCH of the linked library.
func VersionNumber() uint32 { return uint32(C.rmq_version_number()) }

// HeaderVersionNumber is RMQ_VERSION_NUMBER of the header this package was compiled against.
// It equals VersionNumber() unless the header and the library are out of step.
const HeaderVersionNumber = C.RMQ_VERSION_NUMBER

// call runs f, a C call returning a status, with the goroutine locked to its OS thread, and on
// failure reads rmq_last_error_message() on that same thread before anything else can run there.
func call(f func() C.rmq_status_t) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return check(f())
}

// check turns a status into an error. On failure it must run on the OS thread of the failing
// call, right after it (callers hold runtime.LockOSThread).
func check(status C.rmq_status_t) error {
	if status == C.RMQ_OK {
		return nil
	}
	return lastError(status)
}

// lastError builds the *Error of a failed call; same threading rule as check.
func lastError(status C.rmq_status_t) *Error {
	msg := C.GoString(C.rmq_last_error_message())
	e := newError(int(status), msg)
	e.BrokerCode = int(C.rmq_last_error_broker_code())
	return e
}

func newError(status int, message string) *Error {
	return &Error{Status: status, Name: StatusName(status), Message: message}
}

func invalidArgument(format string, args ...any) *Error {
	return newError(StatusInvalidArgument, fmt.Sprintf(format, args...))
}

// cString returns s as a NUL-terminated C string in Go memory, valid while the returned
// pointer is reachable (C only borrows it for the call). A NUL byte inside s is an error: C
// would silently cut the string there. For arguments the library only takes NUL-terminated
// (configuration, ids, queries); message text goes through cText.
func cString(what, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, invalidArgument("%s contains a NUL byte", what)
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	return (*C.char)(unsafe.Pointer(&b[0])), nil
}

// cText lends s to C as pointer + length, for the library's _n functions (message text). It
// is not copied: C borrows it for the call only. NUL bytes are kept, so the library sees the
// whole string and refuses the bytes its rules forbid (NUL, 0x01, 0x02) with
// StatusInvalidArgument instead of reading a string cut at the first NUL.
func cText(s string) (*C.char, C.size_t) {
	if len(s) == 0 {
		return nil, 0
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))
}

// goString copies a borrowed (pointer, length) view out of C.
func goString(p *C.char, n C.size_t) string {
	if n == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
}

// goBytes copies a borrowed (pointer, length) view out of C; never nil.
func goBytes(p *C.uint8_t, n C.size_t) []byte {
	out := make([]byte, int(n))
	if n > 0 {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
	}
	return out
}

// viewString makes a getter call that writes a borrowed string view and copies the view out,
// all on one locked OS thread.
func viewString(f func(out **C.char, n *C.size_t) C.rmq_status_t) (string, error) {
	var p *C.char
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := check(f(&p, &n)); err != nil {
		return "", err
	}
	return goString(p, n), nil
}

// unsafeSlice views a static C array (never freed) as a Go slice; copy what you keep.
func unsafeSlice[T any](p *T, n C.size_t) []T {
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice(p, int(n))
}
