//go:build !rmq_dynamic

package rmq

// Static linking (the default): the library comes from lib/<GOOS>_<GOARCH>/librmq.a beside
// this file, written by `make go-lib` at the root of the rmq repository (or `go generate` in
// this directory, which runs it). Without it, the build stops with the one sentence below
// instead of a linker error.

//go:generate make -C ../../.. go-lib

/*
#cgo CFLAGS: -I${SRCDIR}
#cgo linux,amd64 LDFLAGS: ${SRCDIR}/lib/linux_amd64/librmq.a -ldl -lpthread -lm
#cgo linux,arm64 LDFLAGS: ${SRCDIR}/lib/linux_arm64/librmq.a -ldl -lpthread -lm
#if defined(__linux__) && defined(__x86_64__)
#  if !__has_include("lib/linux_amd64/librmq.a")
#    error "rmq: the native library is not built into this Go module: run `make go-lib` at the root of the rmq repository (or build with -tags rmq_dynamic after `make install`)"
#  endif
#elif defined(__linux__) && defined(__aarch64__)
#  if !__has_include("lib/linux_arm64/librmq.a")
#    error "rmq: the native library is not built into this Go module: run `make go-lib` at the root of the rmq repository (or build with -tags rmq_dynamic after `make install`)"
#  endif
#else
#  error "rmq: no bundled native library for this platform: build with -tags rmq_dynamic after `make install` of the rmq repository"
#endif
*/
import "C"
