// Command gatewaysub is the Go subscriber of the bench "gateway" suite: the counterpart of
// gateway_sub.py, built on the gateway's Go client package (clients/go).
//
// It subscribes, says "<id> 0" on the UDP feedback port once the subscription is in place,
// reports "<id> <index>" (index = cnt - firstCnt + 1) after each data heap, stops at a heap
// marked end_of_stream (or after -idle without a heap) and prints one JSON line with the
// same keys as gateway_sub.py.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"sort"
	"syscall"
	"time"

	gateway "github.com/spead2-rs/spead2-gateway-go"
)

// firstCnt is the heap cnt of the sender's data heap 0 (see gateway_send.py).
const firstCnt = 1000

type delays struct {
	P50 *float64 `json:"p50"`
	P99 *float64 `json:"p99"`
	Max *float64 `json:"max"`
}

func percentiles(values []int64) delays {
	if len(values) == 0 {
		return delays{}
	}
	sort.Slice(values, func(i, j int) bool { return values[i] < values[j] })
	at := func(q float64) *float64 {
		i := int(q * float64(len(values)))
		if i >= len(values) {
			i = len(values) - 1
		}
		v := float64(values[i]) / 1e6
		return &v
	}
	return delays{P50: at(0.5), P99: at(0.99), Max: at(1)}
}

type result struct {
	ReceivedTotal    int      `json:"received_total"`
	Heaps            int      `json:"heaps"`
	PayloadBytes     int64    `json:"payload_bytes"`
	FirstNs          int64    `json:"first_ns"`
	LastNs           int64    `json:"last_ns"`
	Gbps             *float64 `json:"gbps"`
	MessagesPerHeap  *float64 `json:"messages_per_heap"`
	CPUMsPerHeap     *float64 `json:"cpu_ms_per_heap"`
	DroppedByGateway uint64   `json:"dropped_by_gateway"`
	Missing          int64    `json:"missing"`
	Ended            string   `json:"ended"`
	FromSender       delays   `json:"delay_from_sender_ms"`
	FromGateway      delays   `json:"delay_from_gateway_ms"`
}

// cpuSeconds is the user + system CPU time of this process so far.
func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gatewaysub:", err)
		os.Exit(1)
	}
}

func run() error {
	gateway.TuneGC() // as spead2-sub does (see the Go client's docs)
	target := flag.String("target", "", "gateway gRPC address")
	stream := flag.String("stream", "bench", "receive stream")
	id := flag.String("id", "0", "subscriber id in feedback datagrams")
	feedbackPort := flag.Int("feedback", 0, "UDP port of the sender (0: none)")
	warmup := flag.Int("warmup", 10, "heaps left out of the figures")
	idle := flag.Duration("idle", 20*time.Second, "give up after this long without a heap")
	window := flag.Int("window", gateway.DefaultWindowBytes, "tuning: HTTP/2 stream and connection window (0: gRPC's probing window)")
	readBuffer := flag.Int("read-buffer", gateway.DefaultReadBufferBytes, "tuning: transport read buffer size (0: gRPC's default)")
	flag.Parse()
	if *window > math.MaxInt32 {
		return fmt.Errorf("-window %d: at most %d", *window, math.MaxInt32)
	}

	client, err := gateway.Dial(*target, gateway.WithWindowBytes(int32(*window)), gateway.WithReadBufferBytes(*readBuffer))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := client.Subscribe(ctx, *stream)
	if err != nil {
		return err
	}
	defer sub.Close()
	var feedback net.Conn
	if *feedbackPort != 0 {
		feedback, err = net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", *feedbackPort))
		if err != nil {
			return err
		}
		fmt.Fprintf(feedback, "%s 0", *id)
	}
	watchdog := time.AfterFunc(*idle, cancel)

	var res result
	res.Ended = "end_of_stream"
	count := 0
	var dropped, droppedAtStart, cnt, cntAtStart uint64
	var fragments int
	var fromSender, fromGateway []int64
	var cpuAtStart float64
	for {
		heap, err := sub.Recv()
		now := time.Now().UnixNano()
		watchdog.Reset(*idle)
		if err != nil {
			res.Ended = "error: " + err.Error()
			if errors.Is(err, context.Canceled) {
				res.Ended = "idle timeout"
			}
			break
		}
		if heap.EndOfStream {
			break
		}
		payload, stamp := heap.Item("payload"), heap.Item("timestamp")
		if payload == nil || stamp == nil || len(stamp.Data) != 8 {
			continue
		}
		if feedback != nil {
			fmt.Fprintf(feedback, "%s %d", *id, heap.Cnt-firstCnt+1)
		}
		count++
		dropped, cnt = heap.Dropped, heap.Cnt
		if count <= *warmup {
			res.FirstNs = now
			droppedAtStart, cntAtStart = dropped, cnt
			cpuAtStart = cpuSeconds()
			continue
		}
		res.LastNs = now
		res.PayloadBytes += int64(len(payload.Data))
		fragments += heap.Fragments
		fromSender = append(fromSender, now-int64(binary.LittleEndian.Uint64(stamp.Data)))
		fromGateway = append(fromGateway, now-heap.Received.UnixNano())
	}
	cpu := cpuSeconds() - cpuAtStart
	res.ReceivedTotal = count
	res.Heaps = max(count-*warmup, 0)
	if res.Heaps > 0 {
		seconds := float64(res.LastNs-res.FirstNs) / 1e9
		if seconds > 0 {
			gbps := float64(res.PayloadBytes) * 8 / seconds / 1e9
			res.Gbps = &gbps
		}
		perHeap := float64(fragments) / float64(res.Heaps)
		res.MessagesPerHeap = &perHeap
		cpuPerHeap := cpu * 1000 / float64(res.Heaps)
		res.CPUMsPerHeap = &cpuPerHeap
		res.Missing = int64(cnt-cntAtStart) - int64(res.Heaps)
	}
	res.DroppedByGateway = dropped - droppedAtStart
	res.FromSender = percentiles(fromSender)
	res.FromGateway = percentiles(fromGateway)
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}
