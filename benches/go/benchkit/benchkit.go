// Package benchkit holds what the Go benchmark programs (rmq's, and the Apache Go client v2's in
// benches/go-v2) measure alike, so that their figures are taken the same way as the C tool's: a
// log-linear latency histogram, the process's CPU time, and peak RSS and threads.
package benchkit

import (
	"bufio"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

const (
	subBits = 5
	sub     = 1 << subBits
	buckets = 59*sub + sub
)

// Histogram of nanoseconds in log-linear buckets (32 sub-buckets per power of two), as in the
// C tool. Safe for concurrent use.
type Histogram [buckets]atomic.Uint64

func bucketOf(v uint64) int {
	if v < 2*sub {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - subBits
	return shift*sub + int(v>>uint(shift))
}

func bucketMid(i int) float64 {
	if i < 2*sub {
		return float64(i)
	}
	shift := uint(i/sub - 1)
	mant := uint64(sub + i%sub)
	return (float64(mant<<shift) + float64((mant+1)<<shift)) / 2
}

// Record adds one latency in nanoseconds.
func (h *Histogram) Record(ns uint64) {
	h[bucketOf(ns)].Add(1)
}

// PercentileUs is the p-th quantile (0..1) in microseconds, 0 when nothing was recorded.
func (h *Histogram) PercentileUs(p float64) float64 {
	var total uint64
	for i := range h {
		total += h[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := max(uint64(p*float64(total)), 1)
	var seen uint64
	for i := range h {
		seen += h[i].Load()
		if seen >= rank {
			return bucketMid(i) / 1000
		}
	}
	return 0
}

// CPUUs is the user + system time of the whole process so far, in microseconds.
func CPUUs() float64 {
	var u syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return float64(u.Utime.Sec)*1e6 + float64(u.Utime.Usec) + float64(u.Stime.Sec)*1e6 + float64(u.Stime.Usec)
}

// Peaks of VmRSS (KiB) and Threads from /proc/self/status, raised by Sample.
type Peaks struct {
	RSSKiB, Threads int64
}

// Sample reads /proc/self/status once and raises the peaks.
func (p *Peaks) Sample() {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		if fields[0] == "VmRSS:" && v > p.RSSKiB {
			p.RSSKiB = v
		}
		if fields[0] == "Threads:" && v > p.Threads {
			p.Threads = v
		}
	}
}
