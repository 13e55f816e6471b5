// Command gen writes rmq/status_gen.go from the status table of the library it is linked with
// (rmq_status_descs), so the Go constants always come from the library, never from a copy.
//
//	cd bindings/go && go generate ./rmq    (runs: go run ../internal/gen -o status_gen.go)
//
// It links target/release/librmq.a: run `cargo build --release` at the repository root first.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../../../include
#cgo LDFLAGS: ${SRCDIR}/../../../../target/release/librmq.a -ldl -lpthread -lm
#include "rmq.h"
*/
import "C"

import (
	"flag"
	"fmt"
	"os"
	"unsafe"

	"github.com/rmq-client/rmq/bindings/go/internal/statusgen"
)

func main() {
	out := flag.String("o", "", "output file (default: standard output)")
	flag.Parse()

	var n C.size_t
	descs := C.rmq_status_descs(&n)
	rows := make([]statusgen.Row, 0, int(n))
	for _, d := range unsafe.Slice(descs, int(n)) {
		rows = append(rows, statusgen.Row{
			Status:      int(d.status),
			Name:        C.GoString(d.name),
			Description: C.GoString(d.description),
		})
	}
	src, err := statusgen.Source(rows)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if *out == "" {
		_, err = os.Stdout.Write(src)
	} else {
		err = os.WriteFile(*out, src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
