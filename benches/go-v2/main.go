// go_v2_bench: the workloads, options and RESULT line of benches/c/rmq_bench.c, through the Apache
// RocketMQ Go client v2 (github.com/apache/rocketmq-client-go/v2), so that bench-compare can set it
// beside rmq and the Java client on the same broker.
//
//	go_v2_bench produce [options]
//	go_v2_bench consume -c N [options]
//
// Options as the C tool's (-n -t -g -w -s -m -i -b -d -c -W -T -l; one dash). The Go v2 client has
// no in-flight bound for async sends, so the -i window is a semaphore around SendAsync. Batches
// are SendSync with several messages (the client packs them into one batch request). Every client
// setting keeps the library's default. CPU is the whole process's (getrusage), RSS and threads
// from /proc/self/status.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
	"github.com/rmq-client/rmq/benches/go/benchkit"
)

var (
	hist  benchkit.Histogram
	peaks benchkit.Peaks
)

var (
	fs       = flag.NewFlagSet("go_v2_bench", flag.ExitOnError)
	namesrv  = fs.String("n", envOr("RMQ_NAMESRV", "127.0.0.1:9876"), "name server")
	topic    = fs.String("t", "RmqBenchTopic", "topic")
	group    = fs.String("g", "", "producer or consumer group")
	threads  = fs.Int("w", 1, "sending goroutines")
	size     = fs.Int("s", 1024, "body size")
	mode     = fs.String("m", "sync", "sync | async | oneway")
	inflight = fs.Int("i", 256, "async in-flight window")
	batch    = fs.Int("b", 1, "messages per send")
	duration = fs.Float64("d", 10, "measured seconds (without -c)")
	count    = fs.Int64("c", 0, "produce: measured messages; consume: messages to drain")
	warmup   = fs.Int64("W", 2000, "warm-up messages")
	timeout  = fs.Float64("T", 120, "consume: give up after seconds")
	label    = fs.String("l", "", "workload label")
)

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// ------------------------------------------------------------------ producer

var (
	tickets, acked, errCount atomic.Int64
	stopFlag, recordFlag     atomic.Bool
	phaseLimit               int64
	firstError               atomic.Value
	window                   chan struct{}
	pending                  sync.WaitGroup
)

func noteError(err error, n int64) {
	errCount.Add(n)
	firstError.CompareAndSwap(nil, err.Error())
}

func claim() int64 {
	if stopFlag.Load() {
		return 0
	}
	b := int64(*batch)
	if phaseLimit == 0 {
		return b
	}
	old := tickets.Add(b) - b
	if old >= phaseLimit {
		return 0
	}
	return min(b, phaseLimit-old)
}

func sendOK(r *primitive.SendResult, err error) error {
	if err == nil && r != nil && r.Status != primitive.SendOK {
		return fmt.Errorf("send status %d", r.Status)
	}
	return err
}

func sender(p rocketmq.Producer, wg *sync.WaitGroup) {
	defer wg.Done()
	body := make([]byte, *size)
	for i := range body {
		body[i] = 'x'
	}
	ctx := context.Background()
	for n := claim(); n > 0; n = claim() {
		// The client sets properties (message id, batch flags) on the messages it sends, so each send
		// gets its own.
		msgs := make([]*primitive.Message, n)
		for i := range msgs {
			msgs[i] = primitive.NewMessage(*topic, body)
		}
		t0 := time.Now()
		var err error
		switch *mode {
		case "async":
			window <- struct{}{}
			pending.Add(1)
			err = p.SendAsync(ctx, func(_ context.Context, r *primitive.SendResult, err error) {
				if err = sendOK(r, err); err == nil {
					if recordFlag.Load() {
						hist.Record(uint64(time.Since(t0)))
					}
					acked.Add(n)
				} else {
					noteError(err, n)
				}
				<-window
				pending.Done()
			}, msgs...)
			if err != nil {
				<-window
				pending.Done()
				noteError(err, n)
			}
			continue
		case "oneway":
			err = p.SendOneWay(ctx, msgs...)
		default:
			var r *primitive.SendResult
			r, err = p.SendSync(ctx, msgs...)
			err = sendOK(r, err)
		}
		if err != nil {
			noteError(err, n)
			continue
		}
		if recordFlag.Load() {
			hist.Record(uint64(time.Since(t0)))
		}
		acked.Add(n)
	}
}

func runPhase(p rocketmq.Producer, limit int64, secs float64) {
	phaseLimit = limit
	tickets.Store(0)
	stopFlag.Store(false)
	var wg sync.WaitGroup
	var done atomic.Bool
	for i := 0; i < *threads; i++ {
		wg.Add(1)
		go sender(p, &wg)
	}
	go func() { wg.Wait(); pending.Wait(); done.Store(true) }()
	start := time.Now()
	for !done.Load() {
		time.Sleep(20 * time.Millisecond)
		peaks.Sample()
		if limit == 0 && time.Since(start).Seconds() >= secs {
			stopFlag.Store(true)
		}
	}
}

func produce() int {
	g := *group
	if g == "" {
		g = "RmqBenchProducerGoV2"
	}
	window = make(chan struct{}, *inflight)
	p, err := rocketmq.NewProducer(
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{*namesrv})),
		producer.WithGroupName(g))
	if err == nil {
		err = p.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_v2_bench: producer:", err)
		return 1
	}
	if *warmup > 0 {
		runPhase(p, *warmup, 0)
	}
	warmErrors := errCount.Load()
	peaks = benchkit.Peaks{}
	acked0, cpu0, t0 := acked.Load(), benchkit.CPUUs(), time.Now()
	recordFlag.Store(true)
	runPhase(p, *count, *duration)
	secs, cpu1 := time.Since(t0).Seconds(), benchkit.CPUUs()
	recordFlag.Store(false)
	peaks.Sample()
	ok, errs := acked.Load()-acked0, errCount.Load()-warmErrors
	tps := float64(ok) / secs
	cpuPer := 0.0
	if ok > 0 {
		cpuPer = (cpu1 - cpu0) / float64(ok)
	}
	p50, p99, p999 := hist.PercentileUs(0.5), hist.PercentileUs(0.99), hist.PercentileUs(0.999)
	workload := *label
	if workload == "" {
		workload = fmt.Sprintf("%s-w%d-b%d", *mode, *threads, *batch)
	}
	win := 0
	if *mode == "async" {
		win = *inflight
	}
	fmt.Printf("Go client v2 producer: %s, %d goroutine(s), %d-byte bodies, batch %d, topic %s\n", *mode, *threads, *size, *batch, *topic)
	fmt.Printf("  measured %d messages in %.2f s (after %d warm-up)\n", ok, secs, *warmup)
	fmt.Printf("  TPS %.0f   latency per request p50 %.1f us  p99 %.1f us  p999 %.1f us\n", tps, p50, p99, p999)
	fmt.Printf("  client CPU %.2f us/msg   peak RSS %.1f MiB   peak threads %d   errors %d\n", cpuPer, float64(peaks.RSSKiB)/1024, peaks.Threads, errs)
	if e := firstError.Load(); e != nil {
		fmt.Println("  first error:", e)
	}
	fmt.Printf("RESULT client=go-v2 workload=%s mode=%s threads=%d inflight=%d batch=%d size=%d msgs=%d secs=%.3f tps=%.1f "+
		"p50_us=%.1f p99_us=%.1f p999_us=%.1f errors=%d cpu_us_per_msg=%.3f rss_kb=%d threads_peak=%d\n",
		workload, *mode, *threads, win, *batch, *size, ok, secs, tps, p50, p99, p999, errs, cpuPer, peaks.RSSKiB, peaks.Threads)
	_ = p.Shutdown()
	if errs == 0 && (*count == 0 || ok == *count) {
		return 0
	}
	return 1
}

// ------------------------------------------------------------------ consumer

func consume() int {
	if *count <= 0 {
		fmt.Fprintln(os.Stderr, "go_v2_bench: consume needs -c N (messages to drain)")
		return 2
	}
	g := *group
	if g == "" {
		g = fmt.Sprintf("RmqBenchConsumerGoV2_%d", os.Getpid())
	}
	var received, nbytes atomic.Int64
	var firstNs, lastNs atomic.Int64
	c, err := rocketmq.NewPushConsumer(
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{*namesrv})),
		consumer.WithGroupName(g),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_v2_bench: consumer:", err)
		return 1
	}
	epoch := time.Now()
	err = c.Subscribe(*topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		t := int64(time.Since(epoch)) + 1
		var b int64
		for _, m := range msgs {
			b += int64(len(m.Body))
		}
		firstNs.CompareAndSwap(0, t)
		nbytes.Add(b)
		after := received.Add(int64(len(msgs)))
		if before := after - int64(len(msgs)); before < *count && after >= *count {
			lastNs.Store(t)
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_v2_bench: subscribe:", err)
		return 1
	}
	cpu0 := benchkit.CPUUs()
	epoch = time.Now()
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "go_v2_bench: consumer start:", err)
		return 1
	}
	for received.Load() < *count && time.Since(epoch).Seconds() < *timeout {
		time.Sleep(5 * time.Millisecond)
		peaks.Sample()
	}
	cpu1 := benchkit.CPUUs()
	peaks.Sample()
	got := received.Load()
	done := got >= *count
	tLast := int64(time.Since(epoch))
	if done {
		tLast = lastNs.Load()
	}
	secs := float64(tLast) / 1e9
	sinceFirst := 0.0
	if f := firstNs.Load(); f != 0 {
		sinceFirst = float64(tLast-f) / 1e9
	}
	n := min(got, *count)
	rate := float64(n) / secs
	cpuPer := 0.0
	if got > 0 {
		cpuPer = (cpu1 - cpu0) / float64(got)
	}
	state, failed := "drained", 0
	if !done {
		state, failed = "TIMED OUT after", 1
	}
	fmt.Printf("Go client v2 push consumer: topic %s, %s\n", *topic, g)
	fmt.Printf("  %s %d of %d messages (%.1f MiB) in %.2f s from start (%.2f s from the first message)\n",
		state, got, *count, float64(nbytes.Load())/1048576, secs, sinceFirst)
	fmt.Printf("  %.0f msgs/s   client CPU %.2f us/msg   peak RSS %.1f MiB   peak threads %d\n", rate, cpuPer, float64(peaks.RSSKiB)/1024, peaks.Threads)
	wl := *label
	if wl == "" {
		wl = "drain"
	}
	fmt.Printf("RESULT client=go-v2 workload=%s mode=consume msgs=%d secs=%.3f tps=%.1f secs_from_first=%.3f errors=%d "+
		"cpu_us_per_msg=%.3f rss_kb=%d threads_peak=%d\n", wl, got, secs, rate, sinceFirst, failed, cpuPer, peaks.RSSKiB, peaks.Threads)
	_ = c.Shutdown()
	return failed
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "produce" && os.Args[1] != "consume") {
		fmt.Fprintln(os.Stderr, "usage: go_v2_bench produce|consume [options]")
		fs.PrintDefaults()
		os.Exit(2)
	}
	_ = fs.Parse(os.Args[2:])
	if *mode != "sync" && *mode != "async" && *mode != "oneway" {
		fmt.Fprintf(os.Stderr, "go_v2_bench: -m must be sync, async or oneway, not %q\n", *mode)
		os.Exit(2)
	}
	if *threads < 1 || *inflight < 1 || *batch < 1 || *batch > 1024 || *duration <= 0 || *count < 0 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "go_v2_bench: out of range: -w >= 1, -i >= 1, -b 1..1024, -d > 0, -c >= 0, -W >= 0")
		os.Exit(2)
	}
	// The client logs every rebalance and connection at info level to stdout.
	rlog.SetLogLevel("error")
	if os.Args[1] == "consume" {
		os.Exit(consume())
	}
	os.Exit(produce())
}
