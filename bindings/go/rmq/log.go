package rmq

/*
#include "rmq.h"

// Defined in log_export.go (//export).
extern void rmqGoLog(rmq_log_record_t *record, void *user_data);

static void rmq_go_log_trampoline(const rmq_log_record_t *record, void *user_data) {
	rmqGoLog((rmq_log_record_t *)record, user_data);
}

static rmq_status_t rmq_go_set_logger(rmq_log_level_t level) {
	return rmq_set_logger(level == RMQ_LOG_OFF ? NULL : rmq_go_log_trampoline, NULL, level);
}
*/
import "C"

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// LevelTrace is the slog level of the library's trace records (below slog.LevelDebug).
const LevelTrace = slog.LevelDebug - 4

var (
	logger   atomic.Pointer[slog.Logger]
	loggerMu sync.Mutex // serializes SetLogger
)

// SetLogger routes the library's log records to l (log/slog): connection losses and
// re-establishments, route changes, send retries, a name server nobody answers on at start,
// and at debug level connections and first routes. Each record carries the attribute
// "target" (e.g. "rmq::remoting"). Records are handed over on the library's log thread
// ("rmq-log"), never on an I/O thread; the library asks only for the levels l is enabled for.
// A nil l removes the logger. Without one the library prints nothing, unless the environment
// variable RMQ_LOG_LEVEL is set (error, warn, info, debug, trace): then the package logs at that
// level to standard error through a slog text handler until SetLogger is called.
func SetLogger(l *slog.Logger) error {
	loggerMu.Lock()
	defer loggerMu.Unlock()
	level := C.rmq_log_level_t(C.RMQ_LOG_OFF)
	if l != nil {
		ctx := context.Background()
		for _, c := range []struct {
			rmq  C.rmq_log_level_t
			slog slog.Level
		}{
			{C.RMQ_LOG_TRACE, LevelTrace}, {C.RMQ_LOG_DEBUG, slog.LevelDebug},
			{C.RMQ_LOG_INFO, slog.LevelInfo}, {C.RMQ_LOG_WARN, slog.LevelWarn}, {C.RMQ_LOG_ERROR, slog.LevelError},
		} {
			if l.Enabled(ctx, c.slog) {
				level = c.rmq
				break
			}
		}
	}
	if level == C.RMQ_LOG_OFF {
		l = nil
	}
	// Before the library starts calling: records may come as soon as rmq_set_logger returns.
	logger.Store(l)
	return call(func() C.rmq_status_t { return C.rmq_go_set_logger(level) })
}

// LogRecordsDropped is the number of log records the library dropped because the logger did
// not keep up (its queue was full).
func LogRecordsDropped() uint64 { return uint64(C.rmq_log_dropped()) }

func slogLevel(l C.rmq_log_level_t) slog.Level {
	switch l {
	case C.RMQ_LOG_ERROR:
		return slog.LevelError
	case C.RMQ_LOG_WARN:
		return slog.LevelWarn
	case C.RMQ_LOG_INFO:
		return slog.LevelInfo
	case C.RMQ_LOG_DEBUG:
		return slog.LevelDebug
	default:
		return LevelTrace
	}
}

func deliverLog(level C.rmq_log_level_t, target, message string) {
	if l := logger.Load(); l != nil {
		l.Log(context.Background(), slogLevel(level), message, "target", target)
	}
}

func init() {
	var level slog.Level
	switch strings.ToLower(strings.TrimSpace(os.Getenv("RMQ_LOG_LEVEL"))) {
	case "error":
		level = slog.LevelError
	case "warn", "warning":
		level = slog.LevelWarn
	case "info":
		level = slog.LevelInfo
	case "debug":
		level = slog.LevelDebug
	case "trace":
		level = LevelTrace
	default:
		return
	}
	_ = SetLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
}
