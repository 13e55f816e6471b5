module github.com/rmq-client/rmq/bindings/go

go 1.22
