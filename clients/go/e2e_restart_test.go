package gateway

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// feederScript sends, with our spead2, heap i every 10 ms (for at most two minutes): items
// "index" = i and "data" = k*(i+3)+i (uint16, wrapping), each heap with its descriptors so
// that a restarted daemon decodes the very next one.
const feederScript = `
import sys, time, numpy as np, spead2, spead2.send
port = int(sys.argv[1])
config = spead2.send.StreamConfig(rate=50e6, max_packet_size=1472, max_heaps=8)
stream = spead2.send.UdpStream(spead2.ThreadPool(), [("127.0.0.1", port)], config)
g = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 48))
g.add_item(0x1000, "index", "", (), dtype="<u4")
g.add_item(0x1001, "data", "", (500,), dtype="<u2")
end = time.monotonic() + 120
i = 0
while time.monotonic() < end:
    g["index"].value = i
    g["data"].value = (np.arange(500, dtype="<u2") * np.uint16(i + 3) + np.uint16(i))
    stream.send_heap(g.get_heap(descriptors="all", data="all"))
    i += 1
    time.sleep(0.01)
`

func freeTCPPort(t *testing.T) int {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}

// feederIndex returns the heap's index after checking its values are exactly the feeder's.
func feederIndex(t *testing.T, h *Heap) int {
	t.Helper()
	index, ok := h.Item("index").Value.([]uint32)
	if !ok || len(index) != 1 {
		t.Fatalf("heap cnt %d: index %v", h.Cnt, h.Item("index").Value)
	}
	i := int(index[0])
	data, ok := h.Item("data").Value.([]uint16)
	if !ok || len(data) != 500 {
		t.Fatalf("heap %d: data %v", i, short(h.Item("data").Value))
	}
	for k, v := range data {
		if want := uint16(k)*uint16(i+3) + uint16(i); v != want {
			t.Fatalf("heap %d: data[%d] = %d, want %d", i, k, v, want)
		}
	}
	return i
}

type received struct {
	heap *Heap
	at   time.Time
}

// TestEndToEndDaemonKilledAndRestarted kills the daemon with SIGKILL while a reconnecting
// subscription runs and a feeder keeps sending, then starts a new daemon on the same port:
// the subscription must get back by itself, report the outage once, on the first heap after
// it, with values that agree with what the test saw, and deliver exact values again.
func TestEndToEndDaemonKilledAndRestarted(t *testing.T) {
	root := repoRoot(t)
	udpPort := freeUDPPort(t)
	config := fmt.Sprintf(`
[server]
listen = "127.0.0.1:%d"
grace_period = 1.0
[metrics]
enabled = false
[[receive.streams]]
name = "rx"
transport = "udp"
port = %d
ring_heaps = 64
`, freeTCPPort(t), udpPort)
	first := launchDaemon(t, root, config, "first")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	client, err := Dial(first.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	var reports []Reconnect
	policy := DefaultReconnectPolicy()
	policy.InitialBackoff, policy.MaxBackoff, policy.MaxElapsed = 50*time.Millisecond, 500*time.Millisecond, time.Minute
	policy.OnReconnect = func(rc Reconnect) { reports = append(reports, rc) }
	sub, err := client.SubscribeReconnecting(ctx, "rx", policy, QueueDepth(4096))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	feeder := exec.CommandContext(ctx, filepath.Join(root, ".venv", "bin", "python"), "-c", feederScript, strconv.Itoa(udpPort))
	feeder.Env = pythonEnv(root)
	if err := feeder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = feeder.Process.Kill(); _ = feeder.Wait() }()

	// Recv in its own goroutine, so that the test can restart the daemon meanwhile.
	heaps := make(chan received, 100000)
	errs := make(chan error, 1)
	go func() {
		defer close(heaps)
		for {
			h, err := sub.Recv()
			if err != nil {
				errs <- err
				return
			}
			heaps <- received{h, time.Now()}
		}
	}()
	next := func(what string) received {
		select {
		case r, ok := <-heaps:
			if !ok {
				t.Fatalf("%s: subscription ended: %v", what, <-errs)
			}
			return r
		case <-ctx.Done():
			t.Fatalf("%s: timed out", what)
		}
		return received{}
	}

	var old []*Heap
	for len(old) < 5 {
		old = append(old, next("heaps before the kill").heap)
	}
	killed := time.Now()
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_, _ = first.cmd.Process.Wait()
	time.Sleep(300 * time.Millisecond) // an outage the feeder keeps sending through
	restarted := time.Now()
	second := launchDaemon(t, root, config, "second")
	if second.addr != first.addr {
		t.Fatalf("second daemon on %s, first on %s", second.addr, first.addr)
	}

	// Heaps the first daemon delivered before it died, then the first of the second.
	var back received
	for {
		r := next("the first heap after the restart")
		if r.heap.Reconnect != nil {
			back = r
			break
		}
		old = append(old, r.heap)
	}
	newHeaps := []*Heap{back.heap}
	for len(newHeaps) < 5 {
		newHeaps = append(newHeaps, next("heaps after the restart").heap)
	}
	sub.Close()
	for range heaps { // until the Recv goroutine has returned
	}

	checkRun := func(what string, run []*Heap) []int {
		var indices []int
		for i, h := range run {
			indices = append(indices, feederIndex(t, h))
			if h.Sequence != uint64(i+1) || h.Lost != 0 || h.Dropped != 0 {
				t.Fatalf("%s heap %d: sequence %d lost %d dropped %d", what, i, h.Sequence, h.Lost, h.Dropped)
			}
			if i > 0 && (indices[i] != indices[i-1]+1 || h.Reconnect != nil) {
				t.Fatalf("%s heap %d: index %d after %d, reconnect %v", what, i, indices[i], indices[i-1], h.Reconnect)
			}
		}
		return indices
	}
	oldIndex := checkRun("old", old)
	newIndex := checkRun("new", newHeaps)
	lastOld := old[len(old)-1]
	if newIndex[0] <= oldIndex[len(oldIndex)-1]+1 {
		t.Errorf("heap %d right after heap %d: heaps sent during the outage cannot arrive", newIndex[0], oldIndex[len(oldIndex)-1])
	}

	rc := *back.heap.Reconnect
	if len(reports) != 1 || reports[0].Disconnected != rc.Disconnected || sub.Reconnects() != 1 {
		t.Fatalf("OnReconnect got %+v, Reconnects %d, heap has %+v", reports, sub.Reconnects(), rc)
	}
	if rc.Code != codes.Unavailable || rc.Attempts < 1 {
		t.Errorf("code %v attempts %d (%v)", rc.Code, rc.Attempts, rc.Err)
	}
	if rc.LastSequence != lastOld.Sequence || rc.LastCnt != lastOld.Cnt {
		t.Errorf("last sequence %d cnt %d, want %d %d", rc.LastSequence, rc.LastCnt, lastOld.Sequence, lastOld.Cnt)
	}
	// The heap counters say how many heaps were lost, as the indices do.
	if int(back.heap.Cnt-rc.LastCnt) != newIndex[0]-oldIndex[len(oldIndex)-1] {
		t.Errorf("cnt %d after %d, index %d after %d", back.heap.Cnt, rc.LastCnt, newIndex[0], oldIndex[len(oldIndex)-1])
	}
	if rc.PreviousSubscriberID != 1 || rc.SubscriberID != 1 || !rc.ServerRestarted {
		t.Errorf("subscriber ids %d -> %d, restarted %v", rc.PreviousSubscriberID, rc.SubscriberID, rc.ServerRestarted)
	}
	// Broken no earlier than the kill; back no earlier than the second daemon started and no
	// later than its first heap arrived.
	if rc.Disconnected.Before(killed) || rc.Reconnected.Before(restarted) || rc.Reconnected.After(back.at) ||
		rc.Downtime != rc.Reconnected.Sub(rc.Disconnected) {
		t.Errorf("killed %v restarted %v back %v: %+v", killed, restarted, back.at, rc)
	}
	if sub.Lost() != 0 {
		t.Errorf("lost %d", sub.Lost())
	}
}
