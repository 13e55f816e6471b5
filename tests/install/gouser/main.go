// A program in a module of its own that requires the rmq Go module, as a user writes it;
// scripts/test-packaging.sh copies it to a temporary directory and builds it with plain
// `go build`. It sends one message and prints the send result.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rmq-client/rmq/bindings/go/rmq"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gouser NAMESRV TOPIC")
		os.Exit(2)
	}
	p, err := rmq.NewProducer(map[string]string{"name-server": os.Args[1], "producer.group": "rmq_install_check"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer p.Close()
	if err := p.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	msg, err := rmq.NewMessage(os.Args[2], []byte("hello from an outside Go module"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer msg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := p.SendSyncContext(ctx, msg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("sent %s %s queue=%s/%s/%d offset=%d\n", r.StatusName, r.MsgID, r.BrokerName, r.Topic, r.QueueID, r.QueueOffset)
}
