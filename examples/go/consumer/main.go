// Command consumer sends a few messages with rmq's Go binding, then receives them with a push
// consumer through the channel API, and prints them.
//
//	cargo build --release                    # at the repository root, once
//	cd examples/go && go run ./consumer -namesrv 127.0.0.1:9876 -topic GoExampleTopic
//
// The name server comes from -namesrv, else $RMQ_NAMESRV, else 127.0.0.1:9876.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/rmq-client/rmq/bindings/go/rmq"
)

func main() {
	defaultNamesrv := os.Getenv("RMQ_NAMESRV")
	if defaultNamesrv == "" {
		defaultNamesrv = "127.0.0.1:9876"
	}
	namesrv := flag.String("namesrv", defaultNamesrv, "name server address(es), host:port separated by ';'")
	topic := flag.String("topic", "GoExampleTopic", "topic to send to and receive from")
	count := flag.Int("n", 5, "messages to send and receive")
	flag.Parse()
	tag := fmt.Sprintf("run%d", os.Getpid()) // only what this run sent is subscribed

	p, err := rmq.NewProducer(map[string]string{"name-server": *namesrv, "producer.group": "go_example_producer"})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *count; i++ {
		msg, err := rmq.NewMessage(*topic, []byte(fmt.Sprintf("hello %d", i)))
		if err != nil {
			log.Fatal(err)
		}
		msg.SetTags(tag)
		if _, err := p.SendSync(msg); err != nil {
			log.Fatal(err)
		}
		msg.Close()
	}
	p.Close()
	fmt.Printf("sent %d messages tagged %s\n", *count, tag)

	c, err := rmq.NewPushConsumer(map[string]string{
		"name-server":                 *namesrv,
		"consumer.group":              "go_example_consumer",
		"consumer.consume-from-where": "first",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(*topic, tag); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deliveries, err := c.Messages(ctx) // the consumer closes when ctx is done
	if err != nil {
		log.Fatal(err)
	}
	received := 0
	for d := range deliveries {
		for _, m := range d.Messages {
			fmt.Printf("received %s  msg id %s  queue %d offset %d\n", m.Body, m.MsgID, m.QueueID, m.QueueOffset)
			received++
		}
		d.Ack()
		if received >= *count {
			cancel()
		}
	}
	fmt.Printf("received %d of %d\n", received, *count)
	if received < *count {
		os.Exit(1)
	}
}
