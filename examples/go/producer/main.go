// Command producer sends a few messages with rmq's Go binding: sync, async and oneway.
//
//	make go-lib                              # at the repository root, once
//	cd examples/go && go run ./producer -namesrv 127.0.0.1:9876 -topic RmqExampleTopic
//
// The name server comes from -namesrv, else $RMQ_NAMESRV, else 127.0.0.1:9876.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/rmq-client/rmq/bindings/go/rmq"
)

func main() {
	defaultNamesrv := os.Getenv("RMQ_NAMESRV")
	if defaultNamesrv == "" {
		defaultNamesrv = "127.0.0.1:9876"
	}
	namesrv := flag.String("namesrv", defaultNamesrv, "name server address(es), host:port separated by ';'")
	topic := flag.String("topic", "RmqExampleTopic", "topic to send to (auto-created by the broker)")
	group := flag.String("group", "go_example_producer", "producer group")
	count := flag.Int("n", 3, "messages per send mode")
	flag.Parse()
	log.SetFlags(0)

	fmt.Printf("rmq %s, name server %s, topic %s\n", rmq.Version(), *namesrv, *topic)

	p, err := rmq.NewProducer(map[string]string{
		"name-server":    *namesrv,
		"producer.group": *group,
	})
	if err != nil {
		log.Fatalf("create producer: %v", err)
	}
	defer p.Close()
	if err := p.Start(); err != nil {
		log.Fatalf("start producer: %v", err)
	}

	newMessage := func(mode string, i int) *rmq.Message {
		msg, err := rmq.NewMessage(*topic, []byte(fmt.Sprintf("hello from Go, %s #%d", mode, i)))
		if err != nil {
			log.Fatalf("new message: %v", err)
		}
		if err := msg.SetTags(mode); err != nil {
			log.Fatalf("set tags: %v", err)
		}
		if err := msg.SetKeys(fmt.Sprintf("go-example-%s-%d-%d", mode, i, time.Now().UnixNano())); err != nil {
			log.Fatalf("set keys: %v", err)
		}
		return msg
	}
	printResult := func(mode string, _ int, r *rmq.SendResult) {
		// the same line as the C and Python examples
		fmt.Printf("%-6s %s msgId=%s offsetMsgId=%s queue=%s/%s/%d offset=%d\n",
			mode, r.StatusName, r.MsgID, r.OffsetMsgID, r.BrokerName, r.Topic, r.QueueID, r.QueueOffset)
	}

	// Sync: wait for the broker's answer.
	for i := 0; i < *count; i++ {
		msg := newMessage("sync", i)
		r, err := p.SendSync(msg)
		msg.Close()
		if err != nil {
			var e *rmq.Error
			if errors.As(err, &e) && e.Retriable() {
				log.Fatalf("sync send failed (retriable, is the broker up?): %v", err)
			}
			log.Fatalf("sync send failed: %v", err)
		}
		printResult("sync", i, r)
	}

	// Async: the callback runs later on a library callback thread, exactly once per
	// accepted send.
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for i := 0; i < *count; i++ {
		msg := newMessage("async", i)
		wg.Add(1)
		err := p.SendAsync(msg, func(r *rmq.SendResult, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				fmt.Printf("async  #%d failed: %v\n", i, err)
				return
			}
			printResult("async", i, r)
		})
		msg.Close() // the library copied what it needs
		if err != nil {
			wg.Done()
			log.Fatalf("async send not accepted: %v", err)
		}
	}
	wg.Wait()

	// Oneway: no result at all.
	for i := 0; i < *count; i++ {
		msg := newMessage("oneway", i)
		err := p.SendOneway(msg)
		msg.Close()
		if err != nil {
			log.Fatalf("oneway send failed: %v", err)
		}
		fmt.Printf("oneway #%d sent\n", i)
	}

	if err := p.Shutdown(); err != nil {
		log.Fatalf("shutdown: %v", err)
	}
	if failed > 0 {
		log.Fatalf("%d async sends failed", failed)
	}
}
