//go:build rmq_dynamic

package rmq

// Dynamic linking (build tag rmq_dynamic): the shared library installed by `make install` of
// the rmq repository, found through pkg-config (rmq.pc; set PKG_CONFIG_PATH for a PREFIX that
// pkg-config does not search). The program then needs librmq.so.0 at run time.

/*
#cgo pkg-config: rmq
*/
import "C"
