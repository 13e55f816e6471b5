// Command transaction sends three orders in transactions with rmq's Go binding: the first
// commits, the second rolls back, the third answers TransactionUnknown and is committed later by
// the checker, when the broker asks about it. A consumer then receives exactly the two committed
// orders.
//
//	make go-lib                              # at the repository root, once
//	cd examples/go && go run ./transaction -namesrv 127.0.0.1:9876 -topic RmqTransactionTopic
//
// The name server comes from -namesrv, else $RMQ_NAMESRV, else 127.0.0.1:9876. The broker asks
// the checker once a half message is older than its transactionTimeOut (6 s by default) at its
// next check, every transactionCheckInterval (30 s by default), so the third order arrives that
// much later.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rmq-client/rmq/bindings/go/rmq"
)

// order is one order: what its local transaction stores, and what it answers at once.
type order struct {
	key     string
	outcome rmq.TransactionState // what the application's state will say
	answer  rmq.TransactionState // what the local transaction returns now
}

var orders = []order{
	{"order-1", rmq.TransactionCommit, rmq.TransactionCommit},
	{"order-2", rmq.TransactionRollback, rmq.TransactionRollback},
	{"order-3", rmq.TransactionCommit, rmq.TransactionUnknown},
}

// records is the application's own state, standing in for its database: the outcome of each
// local transaction by transaction id. The checker reads it on its own thread.
type records struct {
	mu     sync.Mutex
	states map[string]rmq.TransactionState
}

func (r *records) save(id string, s rmq.TransactionState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states[id] = s
}

func (r *records) get(id string) (rmq.TransactionState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.states[id]
	return s, ok
}

func main() {
	defaultNamesrv := os.Getenv("RMQ_NAMESRV")
	if defaultNamesrv == "" {
		defaultNamesrv = "127.0.0.1:9876"
	}
	namesrv := flag.String("namesrv", defaultNamesrv, "name server address(es), host:port separated by ';'")
	topic := flag.String("topic", "RmqTransactionTopic", "topic to send to and receive from")
	flag.Parse()
	log.SetFlags(0)
	tag := fmt.Sprintf("run%d", os.Getpid()) // only what this run sent is subscribed
	db := &records{states: map[string]rmq.TransactionState{}}

	// The checker runs on the producer's own thread when the broker asks about a transaction
	// whose end it did not get; msg.MsgID is the transaction id.
	check := func(msg *rmq.ReceivedMessage) rmq.TransactionState {
		state, ok := db.get(msg.MsgID)
		if !ok {
			// Not in this run's records: a transaction of another run of the group, which
			// this in-memory stand-in cannot judge; the broker asks again later.
			state = rmq.TransactionUnknown
		}
		fmt.Printf("checker asked about %s: %v\n", msg.MsgID, state)
		return state
	}
	p, err := rmq.NewTransactionProducer(map[string]string{
		"name-server":    *namesrv,
		"producer.group": "go_example_transaction",
	}, check)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}

	// The local transaction runs on this goroutine, after the broker stored the half message.
	execute := func(msg *rmq.Message, result *rmq.SendResult, arg any) rmq.TransactionState {
		o := arg.(order)
		db.save(result.TransactionID, o.outcome) // "write the order to the database"
		fmt.Printf("local transaction of %s (transaction id %s): %v\n", o.key, result.TransactionID, o.answer)
		return o.answer
	}
	for _, o := range orders {
		msg, err := rmq.NewMessage(*topic, []byte(o.key+" of "+tag))
		if err != nil {
			log.Fatal(err)
		}
		if err := msg.SetTags(tag); err != nil {
			log.Fatal(err)
		}
		if err := msg.SetKeys(o.key); err != nil {
			log.Fatal(err)
		}
		r, err := p.SendInTransaction(msg, execute, o)
		msg.Close()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("sent %s in a transaction: %v\n", o.key, r.State)
	}

	// The producer stays open meanwhile: the broker asks its checker about order-3.
	c, err := rmq.NewPushConsumer(map[string]string{
		"name-server":                 *namesrv,
		"consumer.group":              "go_example_transaction_consumer",
		"consumer.consume-from-where": "first",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(*topic, tag); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	deliveries, err := c.Messages(ctx) // the consumer closes when ctx is done
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("waiting for order-1, and for order-3 once the broker asks the checker")
	seen := map[string]int{}
	for d := range deliveries {
		for _, m := range d.Messages {
			fmt.Printf("received %s  msg id %s\n", m.Body, m.MsgID)
			seen[strings.Join(m.Keys, " ")]++
		}
		d.Ack()
		if seen["order-1"] > 0 && seen["order-3"] > 0 {
			cancel()
		}
	}

	ok := len(seen) == 2 && seen["order-1"] == 1 && seen["order-3"] == 1
	verdict := "the two committed orders, once each"
	if !ok {
		verdict = "NOT what was committed"
	}
	fmt.Printf("received order-1 %d time(s), order-2 %d, order-3 %d: %s\n",
		seen["order-1"], seen["order-2"], seen["order-3"], verdict)
	if !ok {
		p.Close()
		os.Exit(1)
	}
}
