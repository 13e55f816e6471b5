// Command request shows request-reply (RPC over RocketMQ) with rmq's Go binding: a responder, a
// push consumer that answers every request it receives, and a requester that sends N requests
// and waits for each reply, in one program (in practice they are two).
//
//	make go-lib                              # at the repository root, once
//	cd examples/go && go run ./request -namesrv 127.0.0.1:9876 -topic RmqRequestTopic -n 5
//
// The name server comes from -namesrv, else $RMQ_NAMESRV, else 127.0.0.1:9876.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/rmq-client/rmq/bindings/go/rmq"
)

// replyTimeout is how long a request waits for its reply. The first one may also wait for the
// responder to start (rebalance, first pull).
const replyTimeout = 30 * time.Second

func newProducer(namesrv, group string) *rmq.Producer {
	p, err := rmq.NewProducer(map[string]string{"name-server": namesrv, "producer.group": group})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	return p
}

func newMessage(topic, tag, body string) *rmq.Message {
	msg, err := rmq.NewMessage(topic, []byte(body))
	if err != nil {
		log.Fatal(err)
	}
	if err := msg.SetTags(tag); err != nil {
		log.Fatal(err)
	}
	return msg
}

func main() {
	defaultNamesrv := os.Getenv("RMQ_NAMESRV")
	if defaultNamesrv == "" {
		defaultNamesrv = "127.0.0.1:9876"
	}
	namesrv := flag.String("namesrv", defaultNamesrv, "name server address(es), host:port separated by ';'")
	topic := flag.String("topic", "RmqRequestTopic", "topic of the requests")
	n := flag.Int("n", 5, "requests to send")
	flag.Parse()
	log.SetFlags(0)
	tag := fmt.Sprintf("run%d", os.Getpid()) // the responder answers only this run's requests

	requester := newProducer(*namesrv, "go_example_requester")
	defer requester.Close()
	replier := newProducer(*namesrv, "go_example_reply")
	defer replier.Close()

	// With topics auto-created by the broker (autoCreateTopicEnable), send once so the topic
	// exists before the responder looks up its route; a topic made by mqadmin needs no such
	// step. The responder does not subscribe this tag.
	hello := newMessage(*topic, "hello", "hello")
	if _, err := requester.SendSync(hello); err != nil {
		log.Fatal(err)
	}
	hello.Close()

	// The responder: its handler runs on the consumer's own threads and answers each request
	// with "re: <request body>". Reply builds the reply (to the requester that sent it) and
	// sends it.
	responder, err := rmq.NewPushConsumer(map[string]string{
		"name-server":                 *namesrv,
		"consumer.group":              "go_example_responder",
		"consumer.consume-from-where": "first",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer responder.Close()
	if err := responder.Subscribe(*topic, tag); err != nil {
		log.Fatal(err)
	}
	err = responder.Start(func(msgs []*rmq.ReceivedMessage) rmq.ConsumeResult {
		for _, m := range msgs {
			if _, err := replier.Reply(m, append([]byte("re: "), m.Body...)); err != nil {
				fmt.Printf("responder: %v\n", err)
				return rmq.ReconsumeLater(0)
			}
		}
		return rmq.ConsumeSuccess
	})
	if err != nil {
		log.Fatal(err)
	}

	// The requester.
	matched := 0
	for i := 0; i < *n; i++ {
		question := fmt.Sprintf("question %d", i)
		request := newMessage(*topic, tag, question)
		reply, err := requester.Request(request, replyTimeout)
		request.Close()
		if errors.Is(err, rmq.ErrTimeout) {
			fmt.Printf("%s: %v\n", question, err) // sent, but no reply came in time
			continue
		} else if err != nil {
			log.Fatal(err)
		}
		body := string(reply.Body())
		reply.Close() // the reply is the caller's
		note := ""
		if body == "re: "+question {
			matched++
		} else {
			note = "  (NOT the answer)"
		}
		fmt.Printf("%s -> %s%s\n", question, body, note)
	}

	fmt.Printf("%d of %d replies came back and matched\n", matched, *n)
	if matched != *n {
		responder.Close()
		replier.Close()
		requester.Close()
		os.Exit(1)
	}
}
