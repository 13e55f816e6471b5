package rmq

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// injectedTag is the injection found in review: as a tag it became a DELAY property on the
// broker, because 0x02 ends a property and 0x01 separates a name from its value.
const injectedTag = "TagA\x02DELAY\x011"

type messageState struct {
	topic, tags string
	keys        []string
	props       map[string]string
	body        []byte
}

func stateOf(m *Message) messageState {
	return messageState{m.Topic(), m.Tags(), m.Keys(), m.Properties(), m.Body()}
}

func (s messageState) equal(o messageState) bool {
	return s.topic == o.topic && s.tags == o.tags && slices.Equal(s.keys, o.keys) &&
		maps.Equal(s.props, o.props) && string(s.body) == string(o.body)
}

// Message text goes to the library whole (pointer + length); the library's rule refuses NUL and
// the separators, names the byte, and leaves the message as it was.
func TestInputRulesRefuseNULAndSeparators(t *testing.T) {
	bad := []struct{ text, needle string }{
		{"a\x00b", "NUL"},
		{"ab\x00", "NUL"},
		{"a\x01b", "0x01"},
		{"a\x02b", "0x02"},
		{injectedTag, "0x02"},
	}
	fields := map[string]func(m *Message, v string) error{
		"topic":          (*Message).SetTopic,
		"tags":           (*Message).SetTags,
		"keys":           func(m *Message, v string) error { return m.SetKeys("ok", v) },
		"property name":  func(m *Message, v string) error { return m.SetProperty(v, "v") },
		"property value": func(m *Message, v string) error { return m.SetProperty("n", v) },
	}
	for field, set := range fields {
		for _, b := range bad {
			t.Run(field+"/"+strings.ReplaceAll(b.needle, " ", "_"), func(t *testing.T) {
				m := newMsg(t, "InputTopic", []byte("body"))
				if err := m.SetTags("TagA"); err != nil {
					t.Fatal(err)
				}
				if err := m.SetKeys("k1"); err != nil {
					t.Fatal(err)
				}
				before := stateOf(m)
				e := wantStatus(t, set(m, b.text), StatusInvalidArgument)
				// the library's rule ("... at byte N"), not a check in this package
				if !strings.Contains(e.Message, b.needle) || !strings.Contains(e.Message, "at byte") {
					t.Errorf("message %q does not name %s and its position", e.Message, b.needle)
				}
				if after := stateOf(m); !after.equal(before) {
					t.Errorf("refused call changed the message: %+v -> %+v", before, after)
				}
				if _, ok := m.Property("DELAY"); ok {
					t.Error("a DELAY property was set")
				}
			})
		}
	}
	_, err := NewMessage("Input\x00Topic", []byte("x"))
	if e := wantStatus(t, err, StatusInvalidArgument); !strings.Contains(e.Message, "at byte 5") {
		t.Errorf("message %q", e.Message)
	}
}

func TestInputLengthsCheckedBySetters(t *testing.T) {
	m := newMsg(t, "T", []byte("x"))
	if err := m.SetTopic(strings.Repeat("t", 127)); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, m.SetTopic(strings.Repeat("t", 128)), StatusInvalidArgument)
	wantStatus(t, m.SetTags(strings.Repeat("x", 32768)), StatusInvalidArgument)
	wantStatus(t, m.SetProperty("n", strings.Repeat("v", 32768)), StatusInvalidArgument)
	half := strings.Repeat("v", 20000)
	if err := m.SetProperty("p1", half); err != nil {
		t.Fatal(err)
	}
	e := wantStatus(t, m.SetProperty("p2", half), StatusInvalidArgument)
	if !strings.Contains(e.Message, "at most 32767") {
		t.Errorf("message %q", e.Message)
	}
	if m.Topic() != strings.Repeat("t", 127) {
		t.Error("a refused topic changed the message")
	}
}

// Arguments the library takes only NUL-terminated are checked here, before C.
func TestNULInCStringArgumentsIsRefusedByTheBinding(t *testing.T) {
	p := newProducer(t, nil)
	_, err := p.ViewMessage("7F00\x000000")
	wantStatus(t, err, StatusInvalidArgument)
	_, err = p.QueryMessage("T", "k\x00", 1, time.Now().Add(-time.Hour), time.Now())
	if e := wantStatus(t, err, StatusInvalidArgument); !strings.Contains(e.Message, "NUL") {
		t.Errorf("message %q", e.Message)
	}
}

func TestReservedStatuses(t *testing.T) {
	for _, c := range []struct {
		status int
		want   int
		name   string
	}{
		{StatusForked, 11, "RMQ_ERR_FORKED"},
		{StatusResource, 106, "RMQ_ERR_RESOURCE"},
		{StatusCancelled, 107, "RMQ_ERR_CANCELLED"},
	} {
		if c.status != c.want || StatusName(c.status) != c.name {
			t.Errorf("%s: got %d named %q", c.name, c.status, StatusName(c.status))
		}
		if newError(c.status, "x").Retriable() {
			t.Errorf("%s is retriable", c.name)
		}
	}
}

// Against the real broker: the injected tag never leaves the process; the message, with its
// normal tag, sends and is stored as an ordinary message.
func TestInjectedTagRefusedBeforeTheBroker(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	msg := newMsg(t, topic, []byte("injection"))
	if err := msg.SetTags("TagA"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, msg.SetTags(injectedTag), StatusInvalidArgument)
	if msg.Tags() != "TagA" {
		t.Fatalf("tags %q after a refused SetTags", msg.Tags())
	}
	warmUp(t, p, topic)
	res, err := p.SendSync(msg)
	if err != nil {
		t.Fatalf("a normal message does not send: %v", err)
	}
	checkSendResult(t, res, topic)
	stored, err := p.ViewMessage(res.OffsetMsgID)
	if err != nil {
		t.Fatal(err)
	}
	defer stored.Close()
	if stored.Tags() != "TagA" {
		t.Errorf("stored tags %q", stored.Tags())
	}
	if v, ok := stored.Property("DELAY"); ok {
		t.Errorf("stored message has DELAY=%q", v)
	}
}
