package rmq

/*
#include "rmq.h"
*/
import "C"

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Message is a RocketMQ message held by the library: one to send (NewMessage), or one read
// back from the broker (Producer.ViewMessage, Producer.QueryMessage) with its stored fields.
//
// Its methods may be called from several goroutines. Close frees it; a finalizer frees a
// forgotten message too, but do not rely on it. Setters on a closed message return an error
// with StatusInvalidHandle; getters return zero values.
type Message struct {
	// mu guards h's lifetime and the borrowed views the getters copy out: the library keeps a
	// view valid only until the message is next modified or destroyed, so getters (and sends,
	// which only read) hold mu.RLock while setters and Close hold mu.Lock.
	mu     sync.RWMutex
	h      *C.rmq_message_t
	closed bool
}

// liveMessages counts Messages not yet closed (by Close or the finalizer); tests use it.
var liveMessages atomic.Int64

func wrapMessage(h *C.rmq_message_t) *Message {
	liveMessages.Add(1)
	m := &Message{h: h}
	runtime.SetFinalizer(m, (*Message).Close)
	return m
}

// NewMessage creates a message for topic with a copy of body. NUL, 0x01/0x02 and topics over
// 127 bytes are refused here (StatusInvalidArgument); the other topic rules are checked when
// the message is sent. An empty body is allowed here, but a send refuses it.
func NewMessage(topic string, body []byte) (*Message, error) {
	var h *C.rmq_message_t
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		h = C.rmq_message_create()
		if h == nil {
			return lastError(C.rmq_last_error_status())
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}
	m := wrapMessage(h)
	if err := m.SetTopic(topic); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.SetBody(body); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Close frees the message. It is idempotent and always returns nil.
func (m *Message) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		C.rmq_message_destroy(m.h)
		runtime.SetFinalizer(m, nil)
		liveMessages.Add(-1)
	}
	return nil
}

func errMessageClosed() *Error { return newError(StatusInvalidHandle, "message is closed") }

// write runs a modifying call under the write lock.
func (m *Message) write(f func(h *C.rmq_message_t) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errMessageClosed()
	}
	return f(m.h)
}

// read runs a reading call (one that copies borrowed views out) under the read lock. It
// returns false without calling f if the message is closed.
func (m *Message) read(f func(h *C.rmq_message_t)) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return false
	}
	f(m.h)
	return true
}

// withHandle lends the handle to a send for the duration of f; the message stays open meanwhile.
func (m *Message) withHandle(f func(h *C.rmq_message_t) error) error {
	if m == nil {
		return invalidArgument("message is nil")
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return errMessageClosed()
	}
	return f(m.h)
}

// Text setters pass the whole string (pointer + length) to the library, which refuses NUL and
// the property separators 0x01/0x02 with StatusInvalidArgument and leaves the message as it
// was: nothing is cut at a NUL, and no tag or key can smuggle in another property.

// SetTopic sets the topic.
func (m *Message) SetTopic(topic string) error {
	return m.write(func(h *C.rmq_message_t) error { return messageSetTopic(h, topic) })
}

func messageSetTopic(h *C.rmq_message_t, topic string) error {
	p, n := cText(topic)
	return call(func() C.rmq_status_t { return C.rmq_message_set_topic_n(h, p, n) })
}

// SetBody sets the body to a copy of body (any bytes, NULs included).
func (m *Message) SetBody(body []byte) error {
	return m.write(func(h *C.rmq_message_t) error {
		var p *C.uint8_t
		if len(body) > 0 {
			p = (*C.uint8_t)(unsafe.Pointer(&body[0]))
		}
		return call(func() C.rmq_status_t { return C.rmq_message_set_body(h, p, C.size_t(len(body))) })
	})
}

// SetTags sets the message's tag; "" removes it.
func (m *Message) SetTags(tags string) error {
	return m.write(func(h *C.rmq_message_t) error {
		p, n := cText(tags)
		return call(func() C.rmq_status_t { return C.rmq_message_set_tags_n(h, p, n) })
	})
}

// SetKeys sets the message's keys (for QueryMessage); none removes them. A key must not be
// empty or contain spaces (the library separates keys with spaces).
func (m *Message) SetKeys(keys ...string) error {
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, " \t\r\n") {
			return invalidArgument("key %q is empty or contains white space", k)
		}
	}
	return m.write(func(h *C.rmq_message_t) error {
		p, n := cText(strings.Join(keys, " "))
		return call(func() C.rmq_status_t { return C.rmq_message_set_keys_n(h, p, n) })
	})
}

// SetProperty sets a user property. Reserved names (TAGS, KEYS, UNIQ_KEY, ...), blank names or
// values, NUL and the characters 0x01/0x02 are refused by the library with
// StatusInvalidArgument.
func (m *Message) SetProperty(name, value string) error {
	return m.write(func(h *C.rmq_message_t) error {
		np, nn := cText(name)
		vp, vn := cText(value)
		return call(func() C.rmq_status_t { return C.rmq_message_set_property_n(h, np, nn, vp, vn) })
	})
}

// getString reads one string view; "" on a closed message or on failure.
func (m *Message) getString(f func(h *C.rmq_message_t, out **C.char, n *C.size_t) C.rmq_status_t) (string, error) {
	var s string
	var err error
	if !m.read(func(h *C.rmq_message_t) {
		s, err = viewString(func(out **C.char, n *C.size_t) C.rmq_status_t { return f(h, out, n) })
	}) {
		return "", errMessageClosed()
	}
	return s, err
}

// Topic is the message's topic.
func (m *Message) Topic() string {
	s, _ := m.getString(func(h *C.rmq_message_t, out **C.char, n *C.size_t) C.rmq_status_t {
		return C.rmq_message_topic(h, out, n)
	})
	return s
}

// Tags is the message's tag, "" if none.
func (m *Message) Tags() string {
	s, _ := m.getString(func(h *C.rmq_message_t, out **C.char, n *C.size_t) C.rmq_status_t {
		return C.rmq_message_tags(h, out, n)
	})
	return s
}

// Keys are the message's keys, nil if none.
func (m *Message) Keys() []string {
	s, _ := m.getString(func(h *C.rmq_message_t, out **C.char, n *C.size_t) C.rmq_status_t {
		return C.rmq_message_keys(h, out, n)
	})
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// Body is a copy of the message's body (never nil on an open message).
func (m *Message) Body() []byte {
	var body []byte
	m.read(func(h *C.rmq_message_t) {
		var p *C.uint8_t
		var n C.size_t
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if C.rmq_message_body(h, &p, &n) == C.RMQ_OK {
			body = goBytes(p, n)
		}
	})
	return body
}

// Property is the value of property name and whether it is set. System properties (TAGS,
// KEYS, UNIQ_KEY, WAIT, ...) are readable too.
func (m *Message) Property(name string) (string, bool) {
	cn, err := cString("property name", name)
	if err != nil {
		return "", false
	}
	s, err := m.getString(func(h *C.rmq_message_t, out **C.char, n *C.size_t) C.rmq_status_t {
		return C.rmq_message_property(h, cn, out, n)
	})
	return s, err == nil
}

// Properties returns a copy of every property, system ones (TAGS, KEYS, WAIT, UNIQ_KEY, ...)
// included.
func (m *Message) Properties() map[string]string {
	return m.propertyMap(false)
}

// UserProperties returns a copy of the user properties only: those whose names are not
// reserved (TAGS, KEYS, WAIT, UNIQ_KEY and the others SetProperty refuses).
func (m *Message) UserProperties() map[string]string {
	return m.propertyMap(true)
}

func (m *Message) propertyMap(userOnly bool) map[string]string {
	props := map[string]string{}
	m.read(func(h *C.rmq_message_t) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var count C.size_t
		st := C.rmq_message_property_count(h, &count)
		if userOnly {
			st = C.rmq_message_user_property_count(h, &count)
		}
		if st != C.RMQ_OK {
			return
		}
		for i := C.size_t(0); i < count; i++ {
			var k, v *C.char
			var kn, vn C.size_t
			if userOnly {
				st = C.rmq_message_user_property_at(h, i, &k, &kn, &v, &vn)
			} else {
				st = C.rmq_message_property_at(h, i, &k, &kn, &v, &vn)
			}
			if st != C.RMQ_OK {
				return
			}
			props[goString(k, kn)] = goString(v, vn)
		}
	})
	return props
}

// MsgID is the message id (UNIQ_KEY) of a message read back from the broker (or, if it has
// none, its offset message id). Sending does not change the caller's message, so for a message
// built with NewMessage it stays ""; the id of a send is in its SendResult.
func (m *Message) MsgID() string {
	s, _ := m.getString(func(h *C.rmq_message_t, out **C.char, n *C.size_t) C.rmq_status_t {
		return C.rmq_message_msg_id(h, out, n)
	})
	return s
}

// OffsetMsgID is the broker's store id of a message read back from the broker; "" otherwise.
func (m *Message) OffsetMsgID() string {
	s, _ := m.getString(func(h *C.rmq_message_t, out **C.char, n *C.size_t) C.rmq_status_t {
		return C.rmq_message_offset_msg_id(h, out, n)
	})
	return s
}

func (m *Message) getInt64(f func(h *C.rmq_message_t, out *C.int64_t) C.rmq_status_t) (int64, bool) {
	var v C.int64_t
	ok := false
	m.read(func(h *C.rmq_message_t) { ok = f(h, &v) == C.RMQ_OK })
	return int64(v), ok
}

// QueueID is the queue a stored message is in; ok is false for a message not read back from
// the broker.
func (m *Message) QueueID() (id int32, ok bool) {
	var v C.int32_t
	m.read(func(h *C.rmq_message_t) { ok = C.rmq_message_queue_id(h, &v) == C.RMQ_OK })
	return int32(v), ok
}

// QueueOffset is the offset of a stored message in its queue; ok as for QueueID.
func (m *Message) QueueOffset() (int64, bool) {
	return m.getInt64(func(h *C.rmq_message_t, out *C.int64_t) C.rmq_status_t {
		return C.rmq_message_queue_offset(h, out)
	})
}

// StoreTimestamp is when the broker stored the message; ok as for QueueID.
func (m *Message) StoreTimestamp() (time.Time, bool) {
	ms, ok := m.getInt64(func(h *C.rmq_message_t, out *C.int64_t) C.rmq_status_t {
		return C.rmq_message_store_timestamp(h, out)
	})
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// BornTimestamp is when the producer sent the message; ok as for QueueID.
func (m *Message) BornTimestamp() (time.Time, bool) {
	ms, ok := m.getInt64(func(h *C.rmq_message_t, out *C.int64_t) C.rmq_status_t {
		return C.rmq_message_born_timestamp(h, out)
	})
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
