package statusgen

import (
	"strings"
	"testing"
)

func TestGoName(t *testing.T) {
	for in, want := range map[string]string{
		"RMQ_OK":                                    "OK",
		"RMQ_ERR_TIMEOUT":                           "Timeout",
		"RMQ_ERR_INVALID_UTF8":                      "InvalidUTF8",
		"RMQ_ERR_IO":                                "IO",
		"RMQ_ERR_BROKER_SYSTEM_BUSY":                "BrokerSystemBusy",
		"RMQ_ERR_BROKER_NO_BUYER_ID":                "BrokerNoBuyerID",
		"RMQ_ERR_BROKER_REQUEST_CODE_NOT_SUPPORTED": "BrokerRequestCodeNotSupported",
	} {
		got, err := GoName(in)
		if err != nil || got != want {
			t.Errorf("GoName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"OK", "RMQ_ERR__X", "RMQ_", "RMQ_ERR_A-B"} {
		if got, err := GoName(bad); err == nil {
			t.Errorf("GoName(%q) = %q, want an error", bad, got)
		}
	}
}

func TestSource(t *testing.T) {
	src, err := Source([]Row{{0, "RMQ_OK", "success"}, {100, "RMQ_ERR_TIMEOUT", "timed\nout"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"StatusOK = 0", "StatusTimeout = 100", `ErrTimeout = &Error{Status: StatusTimeout, Name: "RMQ_ERR_TIMEOUT", Message: "timed out"}`, `{StatusTimeout, "RMQ_ERR_TIMEOUT"}`} {
		if !strings.Contains(string(src), want) {
			t.Errorf("source lacks %q:\n%s", want, src)
		}
	}
	if strings.Contains(string(src), "ErrOK") {
		t.Error("a sentinel for RMQ_OK")
	}
	if _, err := Source([]Row{{1, "RMQ_ERR_A", ""}, {1, "RMQ_ERR_B", ""}}); err == nil {
		t.Error("duplicate status accepted")
	}
	if _, err := Source([]Row{{1, "RMQ_ERR_A_B", ""}, {2, "RMQ_ERR_AB", ""}}); err != nil {
		t.Errorf("distinct names refused: %v", err)
	}
	if _, err := Source([]Row{{1, "RMQ_ERR_IO", ""}, {2, "RMQ_ERR_I_O", ""}}); err == nil {
		t.Error("colliding Go names accepted")
	}
}
