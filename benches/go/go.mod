module github.com/rmq-client/rmq/benches/go

go 1.22

require github.com/rmq-client/rmq/bindings/go v0.0.0

replace github.com/rmq-client/rmq/bindings/go => ../../bindings/go
