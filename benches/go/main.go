// rmq_bench for Go: the workloads, options, histogram and RESULT line of benches/c/rmq_bench.c,
// through the rmq Go package (Producer, PushConsumer).
//
//	rmq_bench_go produce [options]
//	rmq_bench_go consume -c N [options]
//
// Options as the C tool's (-n -t -g -w -s -m -i -b -d -c -W -T -o -l; one dash). Sync sends run on
// -w goroutines; async sends use SendAsync / SendBatchAsync with the library's in-flight window
// (producer.max-in-flight-async-sends = -i); -m queue sends through a CompletionQueue instead,
// -i at a time, its results read from the queue's channel. CPU is the whole process's (getrusage), RSS and
// threads from /proc/self/status. Then, as the C tool, the library's metrics of the topic
// (rmq.MetricsValue) beside the run's own counts; the exit status is 1 when they differ.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rmq-client/rmq/benches/go/benchkit"
	"github.com/rmq-client/rmq/bindings/go/rmq"
)

var (
	hist  benchkit.Histogram
	peaks benchkit.Peaks
)

type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

var (
	fs       = flag.NewFlagSet("rmq_bench_go", flag.ExitOnError)
	namesrv  = fs.String("n", envOr("RMQ_NAMESRV", "127.0.0.1:9876"), "name server")
	topic    = fs.String("t", "RmqBenchTopic", "topic")
	group    = fs.String("g", "", "producer or consumer group")
	threads  = fs.Int("w", 1, "sending goroutines")
	size     = fs.Int("s", 1024, "body size")
	mode     = fs.String("m", "sync", "sync | async | queue | oneway")
	inflight = fs.Int("i", 256, "async in-flight window")
	batch    = fs.Int("b", 1, "messages per send")
	duration = fs.Float64("d", 10, "measured seconds (without -c)")
	count    = fs.Int64("c", 0, "produce: measured messages; consume: messages to drain")
	warmup   = fs.Int64("W", 2000, "warm-up messages")
	timeout  = fs.Float64("T", 120, "consume: give up after seconds")
	label    = fs.String("l", "", "workload label")
	sets     setFlags
)

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func config(groupKey, groupName string) map[string]string {
	cfg := map[string]string{"name-server": *namesrv, groupKey: groupName}
	for _, kv := range sets {
		k, v, _ := strings.Cut(kv, "=")
		cfg[k] = v
	}
	return cfg
}

// ------------------------------------------------------------------ producer

var (
	tickets, acked, accepted, completed, errCount atomic.Int64
	failedRequests                                atomic.Int64
	stopFlag, recordFlag                          atomic.Bool
	phaseLimit                                    int64
	errMu                                         sync.Mutex
	errKinds                                      = map[string]int64{}
	firstError                                    string
)

func noteError(err error, n int64) {
	errCount.Add(n)
	failedRequests.Add(1)
	errMu.Lock()
	defer errMu.Unlock()
	kind := fmt.Sprintf("%T", err)
	if e, ok := err.(*rmq.Error); ok {
		kind = e.Name
	}
	errKinds[kind] += n
	if firstError == "" {
		firstError = err.Error()
	}
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

func sender(p *rmq.Producer, wg *sync.WaitGroup) {
	defer wg.Done()
	body := make([]byte, *size)
	for i := range body {
		body[i] = 'x'
	}
	msgs := make([]*rmq.Message, *batch)
	for i := range msgs {
		m, err := rmq.NewMessage(*topic, body)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rmq_bench_go: message:", err)
			os.Exit(1)
		}
		msgs[i] = m
		defer m.Close()
	}
	for n := claim(); n > 0; n = claim() {
		t0 := time.Now()
		var err error
		switch {
		case *mode == "queue":
			err = sendQueued(p, msgs[0], n, t0)
		case *mode == "async":
			cb := func(_ *rmq.SendResult, err error) {
				if err == nil {
					if recordFlag.Load() {
						hist.Record(uint64(time.Since(t0)))
					}
					acked.Add(n)
				} else {
					noteError(err, n)
				}
				completed.Add(n)
			}
			if *batch > 1 {
				err = p.SendBatchAsync(msgs[:n], cb)
			} else {
				err = p.SendAsync(msgs[0], cb)
			}
			if err == nil {
				accepted.Add(n)
			}
		default:
			switch {
			case *mode == "oneway":
				err = p.SendOneway(msgs[0])
			case *batch > 1:
				_, err = p.SendBatch(msgs[:n])
			default:
				_, err = p.SendSync(msgs[0])
			}
			if err == nil {
				if recordFlag.Load() {
					hist.Record(uint64(time.Since(t0)))
				}
				acked.Add(n)
			}
		}
		if err != nil {
			noteError(err, n)
		}
	}
}

// The completion-queue mode: the queue, -i slots, and each send's start time by tag.
var (
	queue   *rmq.CompletionQueue
	slots   chan struct{}
	nextTag atomic.Uint64
	sentAt  [1 << 16]atomic.Int64
)

func sendQueued(p *rmq.Producer, m *rmq.Message, n int64, t0 time.Time) error {
	slots <- struct{}{}
	tag := nextTag.Add(1)
	sentAt[tag%uint64(len(sentAt))].Store(t0.UnixNano())
	err := queue.Send(p, m, tag)
	if err != nil {
		<-slots
		return err
	}
	accepted.Add(n)
	return nil
}

// drainQueue reads every result of the completion-queue mode until the channel closes.
func drainQueue() {
	for c := range queue.Completions() {
		if c.Err == nil {
			if recordFlag.Load() {
				hist.Record(uint64(time.Now().UnixNano() - sentAt[c.Tag%uint64(len(sentAt))].Load()))
			}
			acked.Add(1)
		} else {
			noteError(c.Err, 1)
		}
		completed.Add(1)
		<-slots
	}
}

func runPhase(p *rmq.Producer, limit int64, secs float64) {
	phaseLimit = limit
	tickets.Store(0)
	stopFlag.Store(false)
	var wg sync.WaitGroup
	var done atomic.Bool
	for i := 0; i < *threads; i++ {
		wg.Add(1)
		go sender(p, &wg)
	}
	go func() { wg.Wait(); done.Store(true) }()
	start := time.Now()
	for !done.Load() {
		time.Sleep(20 * time.Millisecond)
		peaks.Sample()
		if limit == 0 && time.Since(start).Seconds() >= secs {
			stopFlag.Store(true)
		}
	}
	for completed.Load() < accepted.Load() {
		time.Sleep(time.Millisecond)
		peaks.Sample()
	}
}

func produce() int {
	g := *group
	if g == "" {
		g = "RmqBenchProducerGo"
	}
	cfg := config("producer.group", g)
	if *mode == "async" {
		if _, set := cfg["producer.max-in-flight-async-sends"]; !set {
			cfg["producer.max-in-flight-async-sends"] = strconv.Itoa(*inflight)
		}
	}
	p, err := rmq.NewProducer(cfg)
	if err == nil {
		err = p.Start()
	}
	if err == nil && *mode == "queue" {
		slots = make(chan struct{}, *inflight)
		if queue, err = rmq.NewCompletionQueue(*inflight); err == nil {
			go drainQueue()
			defer queue.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rmq_bench_go: producer:", err)
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
		if *mode == "async" || *mode == "queue" {
			workload = fmt.Sprintf(*mode+"-w%d-i%d-b%d", *threads, *inflight, *batch)
		} else {
			workload = fmt.Sprintf("%s-w%d-b%d", *mode, *threads, *batch)
		}
	}
	win := 0
	if *mode == "async" || *mode == "queue" {
		win = *inflight
	}
	fmt.Printf("rmq (Go) producer: %s, %d goroutine(s), %d-byte bodies, batch %d, topic %s\n", *mode, *threads, *size, *batch, *topic)
	fmt.Printf("  measured %d messages in %.2f s (after %d warm-up)\n", ok, secs, *warmup)
	fmt.Printf("  TPS %.0f   latency per request p50 %.1f us  p99 %.1f us  p999 %.1f us\n", tps, p50, p99, p999)
	fmt.Printf("  client CPU %.2f us/msg   peak RSS %.1f MiB   peak threads %d   errors %d\n", cpuPer, float64(peaks.RSSKiB)/1024, peaks.Threads, errs)
	kinds := make([]string, 0, len(errKinds))
	for k := range errKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Printf("  error %-36s x %d\n", k, errKinds[k])
	}
	if firstError != "" {
		fmt.Println("  first error:", firstError)
	}
	fmt.Printf("RESULT client=rmq-go workload=%s mode=%s threads=%d inflight=%d batch=%d size=%d msgs=%d secs=%.3f tps=%.1f "+
		"p50_us=%.1f p99_us=%.1f p999_us=%.1f errors=%d cpu_us_per_msg=%.3f rss_kb=%d threads_peak=%d\n",
		workload, *mode, *threads, win, *batch, *size, ok, secs, tps, p50, p99, p999, errs, cpuPer, peaks.RSSKiB, peaks.Threads)
	if err := p.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "rmq_bench_go: close:", err)
		return 1
	}
	differ := produceMetrics(cfg)
	if errs == 0 && !differ && (*count == 0 || ok == *count) {
		return 0
	}
	return 1
}

// ------------------------------------------------------------------ metrics vs counts

// metric is the library's metric name for the topic (every broker); -1 after printing why not.
func metric(name string) int64 {
	v, err := rmq.MetricsValue(name, *topic, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "rmq_bench_go: metric:", err)
		return -1
	}
	return int64(v)
}

// compare prints a metric's value beside the run's own count; true when they differ.
func compare(what string, own, m int64) bool {
	verdict := "equal"
	if m != own {
		verdict = "DIFFERENT"
	}
	fmt.Printf("  %-22s run %-10d metrics %-10d %s\n", what, own, m, verdict)
	return m != own
}

// produceMetrics compares the metrics of the whole run, warm-up included (see the C tool).
func produceMetrics(cfg map[string]string) bool {
	fmt.Printf("  metrics of topic %s (whole run, warm-up included):\n", *topic)
	const thresholdKey = "producer.compress-message-body-threshold"
	threshold, set := cfg[thresholdKey]
	if !set {
		for _, k := range rmq.ConfigKeys() {
			if k.Name == thresholdKey {
				threshold = k.Default
			}
		}
	}
	compressOver, _ := strconv.Atoi(threshold)
	differ := compare("messages sent", acked.Load(), metric("rmq_messages_sent_total"))
	if *batch == 1 && *size < compressOver {
		differ = compare("body bytes sent", acked.Load()*int64(*size), metric("rmq_bytes_sent_total")) || differ
	} else {
		what := "compressed bodies"
		if *batch > 1 {
			what = "encoded batches"
		}
		fmt.Printf("  %-22s metrics %d (not compared: it counts %s as sent)\n", "body bytes sent", metric("rmq_bytes_sent_total"), what)
	}
	// A request that failed in the end failed one attempt more than it was retried.
	failed := metric("rmq_send_errors_total") - metric("rmq_send_retries_total")
	differ = compare("failed requests", failedRequests.Load(), failed) || differ
	differ = compare("sends in flight", 0, metric("rmq_sends_in_flight")) || differ
	if differ {
		fmt.Println("  METRICS DIFFER from the run's counts")
	}
	return differ
}

// ------------------------------------------------------------------ consumer

func consume() int {
	if *count <= 0 {
		fmt.Fprintln(os.Stderr, "rmq_bench_go: consume needs -c N (messages to drain)")
		return 2
	}
	g := *group
	if g == "" {
		g = fmt.Sprintf("RmqBenchConsumerGo_%d", os.Getpid())
	}
	cfg := config("consumer.group", g)
	if _, set := cfg["consumer.consume-from-where"]; !set {
		cfg["consumer.consume-from-where"] = "first"
	}
	var received, nbytes atomic.Int64
	var firstNs, lastNs atomic.Int64
	c, err := rmq.NewPushConsumer(cfg)
	if err == nil {
		err = c.Subscribe(*topic, "*")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rmq_bench_go: consumer:", err)
		return 1
	}
	epoch := time.Now()
	cpu0 := benchkit.CPUUs()
	err = c.Start(func(msgs []*rmq.ReceivedMessage) rmq.ConsumeResult {
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
		return rmq.ConsumeSuccess
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rmq_bench_go: consumer start:", err)
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
	n := got
	if done {
		n = *count
	}
	rate := float64(n) / secs
	cpuPer := 0.0
	if got > 0 {
		cpuPer = (cpu1 - cpu0) / float64(got)
	}
	state, failed := "drained", 0
	if !done {
		state, failed = "TIMED OUT after", 1
	}
	fmt.Printf("rmq (Go) push consumer: topic %s, %s\n", *topic, g)
	fmt.Printf("  %s %d of %d messages (%.1f MiB) in %.2f s from start (%.2f s from the first message)\n",
		state, got, *count, float64(nbytes.Load())/1048576, secs, sinceFirst)
	fmt.Printf("  %.0f msgs/s   client CPU %.2f us/msg   peak RSS %.1f MiB   peak threads %d\n", rate, cpuPer, float64(peaks.RSSKiB)/1024, peaks.Threads)
	wl := *label
	if wl == "" {
		wl = "drain"
	}
	fmt.Printf("RESULT client=rmq-go workload=%s mode=consume msgs=%d secs=%.3f tps=%.1f secs_from_first=%.3f errors=%d "+
		"cpu_us_per_msg=%.3f rss_kb=%d threads_peak=%d\n", wl, got, secs, rate, sinceFirst, failed, cpuPer, peaks.RSSKiB, peaks.Threads)
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "rmq_bench_go: close:", err)
		return 1
	}
	// Closed: every listener call has returned and recorded its batch.
	fmt.Printf("  metrics of topic %s:\n", *topic)
	differ := compare("messages consumed", received.Load(), metric("rmq_messages_consumed_total"))
	differ = compare("body bytes consumed", nbytes.Load(), metric("rmq_bytes_consumed_total")) || differ
	differ = compare("failed listener calls", 0, metric("rmq_consume_failures_total")) || differ
	if differ {
		fmt.Println("  METRICS DIFFER from the run's counts")
		return 1
	}
	return failed
}

func main() {
	fs.Var(&sets, "o", "KEY=VALUE: any rmq config key (repeatable)")
	if len(os.Args) < 2 || (os.Args[1] != "produce" && os.Args[1] != "consume") {
		fmt.Fprintln(os.Stderr, "usage: rmq_bench_go produce|consume [options]")
		fs.PrintDefaults()
		os.Exit(2)
	}
	_ = fs.Parse(os.Args[2:])
	if *mode != "sync" && *mode != "async" && *mode != "queue" && *mode != "oneway" {
		fmt.Fprintf(os.Stderr, "rmq_bench_go: -m must be sync, async, queue or oneway, not %q\n", *mode)
		os.Exit(2)
	}
	if *mode == "queue" && *batch != 1 {
		fmt.Fprintln(os.Stderr, "rmq_bench_go: -m queue sends single messages (-b 1)")
		os.Exit(2)
	}
	if *threads < 1 || *inflight < 1 || *batch < 1 || *batch > 1024 || *duration <= 0 || *count < 0 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "rmq_bench_go: out of range: -w >= 1, -i >= 1, -b 1..1024, -d > 0, -c >= 0, -W >= 0")
		os.Exit(2)
	}
	if *mode == "oneway" && *batch > 1 {
		fmt.Fprintln(os.Stderr, "rmq_bench_go: batches are sent sync or async, not oneway")
		os.Exit(2)
	}
	for _, kv := range sets {
		if !strings.Contains(kv, "=") {
			fmt.Fprintf(os.Stderr, "rmq_bench_go: -o takes KEY=VALUE, not %q\n", kv)
			os.Exit(2)
		}
	}
	if os.Args[1] == "consume" {
		os.Exit(consume())
	}
	os.Exit(produce())
}
