package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// e2eSender sends, with our spead2, heaps whose item values follow from the heap index i,
// so the test can compute what must arrive. Heap 0 is a start heap; the last is a stop heap.
const e2eSender = `
import sys, numpy as np, spead2, spead2.send
port, count = int(sys.argv[1]), int(sys.argv[2])
config = spead2.send.StreamConfig(rate=50e6, max_packet_size=1472, max_heaps=8)
stream = spead2.send.UdpStream(spead2.ThreadPool(), [("127.0.0.1", port)], config)
g = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 48))
g.add_item(0x1600, "timestamp", "", (), format=[("u", 48)])
g.add_item(0x1601, "u1", "", (3,), dtype="u1")
g.add_item(0x1602, "i2be", "", (2,), dtype=">i2")
g.add_item(0x1603, "u8", "", (2,), dtype="<u8")
g.add_item(0x1604, "f4", "", (4,), dtype="<f4")
g.add_item(0x1605, "f8be", "", (2,), dtype=">f8")
g.add_item(0x1606, "c8", "", (2,), dtype="<c8")
g.add_item(0x1607, "c16", "", (1,), dtype="<c16")
g.add_item(0x1608, "flags", "", (3,), dtype="?")
g.add_item(0x1609, "big", "", (100000,), dtype="<i4")
stream.send_heap(g.get_start())
for i in range(count):
    g["timestamp"].value = 1000 * i + 7
    g["u1"].value = np.array([i, 255, 3], dtype="u1")
    g["i2be"].value = np.array([-i, 300], dtype=">i2")
    g["u8"].value = np.array([2**63 + i, 5], dtype="<u8")
    g["f4"].value = np.array([i + 0.5, -1.25, 3e38, 0], dtype="<f4")
    g["f8be"].value = np.array([np.pi * i, -1e-300], dtype=">f8")
    g["c8"].value = np.array([complex(i, -1), complex(0.5, 2)], dtype="<c8")
    g["c16"].value = np.array([complex(-i, 1e100)], dtype="<c16")
    g["flags"].value = np.array([i % 2 == 0, True, False])
    g["big"].value = np.arange(100000, dtype="<i4") * (i + 1) - 50000
    stream.send_heap(g.get_heap())
stream.send_heap(g.get_end())
`

func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func freeUDPPort(t *testing.T) int {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).Port
}

// startDaemon runs the real gateway with one UDP receive stream and a UDP send stream aimed
// at it; it returns the gRPC address.
func startDaemon(t *testing.T, root string, port int) string {
	config := fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
grace_period = 1.0
[metrics]
enabled = false
[subscribe]
fragment_bytes = 65536
default_queue_depth = 512
max_queue_depth = 512
[[receive.streams]]
name = "rx"
transport = "udp"
port = %d
max_heaps = 8
ring_heaps = 64
[[send.streams]]
name = "tx"
transport = "udp"
destinations = ["127.0.0.1:%d"]
flavour = "64-48"
rate = 50e6
`, port, port)
	return launchDaemon(t, root, config, "gateway").addr
}

// daemonProcess is a running gateway daemon.
type daemonProcess struct {
	addr string // the gRPC address, from the ready file
	cmd  *exec.Cmd
}

// launchDaemon runs the real gateway with a configuration and waits for its ready file; the
// test's cleanup kills it. It skips the test when the daemon is not installed.
func launchDaemon(t *testing.T, root, config, name string) *daemonProcess {
	daemon := filepath.Join(root, ".venv", "bin", "spead2-gateway")
	if _, err := os.Stat(daemon); err != nil {
		t.Skipf("skipping the end-to-end test: %s is absent (create the venv: see docs/gateway.md)", daemon)
	}
	dir := t.TempDir()
	configPath := filepath.Join(dir, name+".toml")
	readyPath := filepath.Join(dir, name+".ready.json")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config", configPath, "--ready-file", readyPath)
	cmd.Env = pythonEnv(root)
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = log.Close()
		if t.Failed() {
			text, _ := os.ReadFile(log.Name())
			t.Logf("%s log:\n%s", name, text)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if text, err := os.ReadFile(readyPath); err == nil && len(text) > 0 {
			var ready map[string]any
			if json.Unmarshal(text, &ready) == nil {
				if addr, ok := ready["grpc"].(string); ok {
					return &daemonProcess{addr: addr, cmd: cmd}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 30 s", name)
	return nil
}

func pythonEnv(root string) []string {
	path := filepath.Join(root, "service") + string(os.PathListSeparator) + root
	if old := os.Getenv("PYTHONPATH"); old != "" {
		path += string(os.PathListSeparator) + old
	}
	return append(os.Environ(), "PYTHONPATH="+path, "PYTHONUNBUFFERED=1")
}

func waitSubscribers(t *testing.T, ctx context.Context, c *Client, stream string, n uint32) {
	for {
		detail, err := c.GetStream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		if detail.GetInfo().GetSubscribers() == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d subscribers: %v", n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestEndToEndAgainstDaemon(t *testing.T) {
	root := repoRoot(t)
	port := freeUDPPort(t)
	addr := startDaemon(t, root, port)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	client, err := Dial(addr, WithKeepalive(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	streams, err := client.ListStreams(ctx)
	if err != nil || len(streams) != 2 {
		t.Fatalf("ListStreams: %v %v", streams, err)
	}
	sub, err := client.Subscribe(ctx, "rx")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if sub.QueueDepth() != 512 {
		t.Errorf("queue depth %d", sub.QueueDepth())
	}
	waitSubscribers(t, ctx, client, "rx", 1)

	const count = 5
	sender := exec.CommandContext(ctx, filepath.Join(root, ".venv", "bin", "python"), "-c", e2eSender,
		strconv.Itoa(port), strconv.Itoa(count))
	sender.Env = pythonEnv(root)
	if out, err := sender.CombinedOutput(); err != nil {
		t.Fatalf("python sender: %v\n%s", err, out)
	}

	var data []*Heap
	for {
		h, err := sub.Recv()
		if err != nil {
			t.Fatalf("Recv after %d heaps: %v", len(data), err)
		}
		if h.EndOfStream {
			break
		}
		if h.Item("big") != nil {
			data = append(data, h)
		}
	}
	if len(data) != count || sub.Lost() != 0 {
		t.Fatalf("got %d data heaps (lost %d), want %d", len(data), sub.Lost(), count)
	}
	for i, h := range data {
		checkHeap(t, i, h)
	}
	if data[0].Fragments < 2 {
		t.Errorf("a 400 kB heap with 64 KiB fragments came in %d message(s)", data[0].Fragments)
	}
	testSendRoundTrip(t, ctx, client, sub)
	testWatchStats(t, ctx, client)
}

func checkHeap(t *testing.T, i int, h *Heap) {
	t.Helper()
	fi := float64(i)
	big := make([]int32, 100000)
	for k := range big {
		big[k] = int32(k*(i+1) - 50000)
	}
	want := map[string]any{
		"timestamp": []uint64{uint64(1000*i + 7)},
		"u1":        []uint8{uint8(i), 255, 3},
		"i2be":      []int16{int16(-i), 300},
		"u8":        []uint64{1<<63 + uint64(i), 5},
		"f4":        []float32{float32(fi + 0.5), -1.25, 3e38, 0},
		"f8be":      []float64{math.Pi * fi, -1e-300},
		"c8":        []complex64{complex(float32(fi), -1), complex(0.5, 2)},
		"c16":       []complex128{complex(-fi, 1e100)},
		"flags":     []bool{i%2 == 0, true, false},
		"big":       big,
	}
	for name, w := range want {
		it := h.Item(name)
		if it == nil {
			t.Errorf("heap %d: item %s missing", i, name)
			continue
		}
		if !reflect.DeepEqual(it.Value, w) {
			t.Errorf("heap %d item %s (dtype %s): got %v, want %v", i, name, it.Dtype, short(it.Value), short(w))
		}
	}
}

func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// testSendRoundTrip sends heaps from Go into "tx", which the daemon puts on the wire to its
// own receive stream "rx": the subscription must get them back with the same values.
func testSendRoundTrip(t *testing.T, ctx context.Context, client *Client, sub *Subscription) {
	sender, err := client.Send(ctx, "tx")
	if err != nil {
		t.Fatal(err)
	}
	desc := []*pbDescriptor{
		{Id: 0x1700, Name: "gof8", Shape: []int64{3}, Dtype: "<f8"},
		{Id: 0x1701, Name: "goi2", Shape: []int64{2}, Dtype: ">i2"},
	}
	for k := 0; k < 3; k++ {
		a, err := NewItem(0x1700, "gof8", []float64{float64(k), -0.5, 1e10}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewItem(0x1701, "goi2", []int16{int16(-k), 1234}, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := &SendHeap{Items: []*pbItem{a, b}}
		if k == 0 {
			h.Descriptors = desc
		}
		if err := sender.Send(h); err != nil {
			t.Fatal(err)
		}
	}
	result, err := sender.Close()
	if err != nil || result.Heaps != 3 || result.Bytes == 0 {
		t.Fatalf("Send: %+v %v", result, err)
	}
	for k := 0; k < 3; {
		h, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		it := h.Item("gof8")
		if it == nil {
			continue
		}
		if v := it.Value; !reflect.DeepEqual(v, []float64{float64(k), -0.5, 1e10}) {
			t.Errorf("sent heap %d: gof8 %v", k, v)
		}
		if v := h.Item("goi2").Value; !reflect.DeepEqual(v, []int16{int16(-k), 1234}) {
			t.Errorf("sent heap %d: goi2 %v", k, v)
		}
		k++
	}
}

func testWatchStats(t *testing.T, ctx context.Context, client *Client) {
	watch, err := client.WatchStats(ctx, 100*time.Millisecond, "rx")
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	update, err := watch.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(update.GetStreams()) != 1 || update.GetStreams()[0].GetStream() != "rx" {
		t.Fatalf("stats: %v", update)
	}
	// Start + 5 data + stop from Python, 3 from Go.
	if heaps := update.GetStreams()[0].GetCounters()["heaps"]; heaps < 9 {
		t.Errorf("stats: %d heaps, want at least 9", heaps)
	}
}
