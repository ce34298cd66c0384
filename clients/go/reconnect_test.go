package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/spead2-rs/spead2-gateway-go/gen/gatewayv1"
)

// errBlock as the end of a scripted call: the call stays open until the server stops.
var errBlock = errors.New("block")

// scriptedGateway is one "daemon process": its subscriber ids start from 1, and call k
// (from 1) of Subscribe or WatchStats sends what script(k) says, then ends as it says.
type scriptedGateway struct {
	pb.UnimplementedGatewayServer
	mu     sync.Mutex
	calls  int
	script func(call int) ([]*pb.Heap, error)
}

func (g *scriptedGateway) next() ([]*pb.Heap, error, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	heaps, end := g.script(g.calls)
	return heaps, end, g.calls
}

func (g *scriptedGateway) callCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

func endCall(ctx context.Context, end error) error {
	if errors.Is(end, errBlock) {
		<-ctx.Done()
		return ctx.Err()
	}
	return end
}

func (g *scriptedGateway) Subscribe(req *pb.SubscribeRequest, srv grpc.ServerStreamingServer[pb.Heap]) error {
	if req.GetStream() != "s" {
		return status.Error(codes.NotFound, "no such stream")
	}
	heaps, end, id := g.next()
	if err := srv.SendHeader(metadata.Pairs("x-subscriber-id", strconv.Itoa(id), "x-queue-depth", "64")); err != nil {
		return err
	}
	for _, h := range heaps {
		if err := srv.Send(h); err != nil {
			return err
		}
	}
	return endCall(srv.Context(), end)
}

func (g *scriptedGateway) WatchStats(req *pb.WatchStatsRequest, srv grpc.ServerStreamingServer[pb.StatsUpdate]) error {
	heaps, end, _ := g.next()
	for _, h := range heaps { // one update per scripted heap, its cnt as the "heaps" counter
		update := &pb.StatsUpdate{Time: timestamppb.Now(), Streams: []*pb.StreamStats{
			{Stream: "s", Counters: map[string]uint64{"heaps": h.GetCnt()}},
		}}
		if err := srv.Send(update); err != nil {
			return err
		}
	}
	return endCall(srv.Context(), end)
}

// restartable is a bufconn "port" on which gateways can be started and stopped.
type restartable struct {
	mu     sync.Mutex
	lis    *bufconn.Listener
	server *grpc.Server
}

func (r *restartable) start(g *scriptedGateway) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lis = bufconn.Listen(1 << 20)
	r.server = grpc.NewServer()
	pb.RegisterGatewayServer(r.server, g)
	go func(s *grpc.Server, l net.Listener) { _ = s.Serve(l) }(r.server, r.lis)
}

// stop kills the server: its connections close, and nothing listens until start.
func (r *restartable) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.server != nil {
		r.server.Stop()
		r.server, r.lis = nil, nil
	}
}

func (r *restartable) dial(ctx context.Context, _ string) (net.Conn, error) {
	r.mu.Lock()
	lis := r.lis
	r.mu.Unlock()
	if lis == nil {
		return nil, errors.New("connection refused (nothing listening)")
	}
	return lis.DialContext(ctx)
}

func newRestartable(t *testing.T) (*restartable, *Client) {
	t.Helper()
	r := &restartable{}
	t.Cleanup(r.stop)
	client, err := Dial("passthrough:///bufnet", WithDialOptions(grpc.WithContextDialer(r.dial)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return r, client
}

func heapMsg(seq, cnt uint64) *pb.Heap {
	item := &pb.Item{Id: 0x1000, Name: "x", Dtype: "|u1", Shape: []uint64{2}, Data: []byte{byte(cnt), byte(seq)}}
	return &pb.Heap{Stream: "s", Cnt: cnt, Sequence: seq, Items: []*pb.Item{item}}
}

// heaps returns messages with sequence numbers 1..n and heap counters from cnt.
func heaps(n int, cnt uint64) []*pb.Heap {
	var out []*pb.Heap
	for i := range n {
		out = append(out, heapMsg(uint64(i+1), cnt+uint64(i)))
	}
	return out
}

func fastPolicy() ReconnectPolicy {
	p := DefaultReconnectPolicy()
	p.InitialBackoff, p.MaxBackoff, p.MaxElapsed = 5*time.Millisecond, 50*time.Millisecond, 20*time.Second
	return p
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recvHeap returns the next heap and checks its values are those heapMsg built.
func recvHeap(t *testing.T, sub *Subscription) *Heap {
	t.Helper()
	h, err := sub.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	v, ok := h.Item("x").Value.([]uint8)
	if !ok || len(v) != 2 || v[0] != byte(h.Cnt) || v[1] != byte(h.Sequence) {
		t.Fatalf("heap cnt %d seq %d: item %v", h.Cnt, h.Sequence, h.Item("x").Value)
	}
	return h
}

func TestReconnectAfterServerRestart(t *testing.T) {
	r, client := newRestartable(t)
	first := &scriptedGateway{script: func(int) ([]*pb.Heap, error) { return heaps(3, 100), errBlock }}
	r.start(first)
	var reports []Reconnect
	policy := fastPolicy()
	policy.OnReconnect = func(rc Reconnect) { reports = append(reports, rc) }
	sub, err := client.SubscribeReconnecting(testContext(t), "s", policy)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := range 3 {
		if h := recvHeap(t, sub); h.Sequence != uint64(i+1) || h.Reconnect != nil {
			t.Fatalf("heap %d: seq %d reconnect %v", i, h.Sequence, h.Reconnect)
		}
	}
	stopped := time.Now()
	r.stop()
	second := &scriptedGateway{script: func(int) ([]*pb.Heap, error) { return heaps(2, 200), nil }}
	r.start(second)

	h := recvHeap(t, sub)
	back := time.Now()
	if h.Cnt != 200 || h.Sequence != 1 || h.Lost != 0 || h.Reconnect == nil {
		t.Fatalf("first heap after the restart: cnt %d seq %d lost %d reconnect %v", h.Cnt, h.Sequence, h.Lost, h.Reconnect)
	}
	rc := *h.Reconnect
	if len(reports) != 1 || reports[0].Disconnected != rc.Disconnected || reports[0].Attempts != rc.Attempts {
		t.Fatalf("OnReconnect got %+v, heap has %+v", reports, rc)
	}
	if rc.Code != codes.Unavailable || status.Code(rc.Err) != codes.Unavailable {
		t.Errorf("code %v err %v", rc.Code, rc.Err)
	}
	if rc.LastSequence != 3 || rc.LastCnt != 102 || rc.Attempts < 1 {
		t.Errorf("last sequence %d cnt %d attempts %d", rc.LastSequence, rc.LastCnt, rc.Attempts)
	}
	if rc.PreviousSubscriberID != 1 || rc.SubscriberID != 1 || !rc.ServerRestarted {
		t.Errorf("ids %d -> %d, restarted %v", rc.PreviousSubscriberID, rc.SubscriberID, rc.ServerRestarted)
	}
	if rc.Disconnected.Before(stopped) || rc.Reconnected.After(back) || rc.Downtime != rc.Reconnected.Sub(rc.Disconnected) || rc.Downtime <= 0 {
		t.Errorf("times: stopped %v, %+v, back %v", stopped, rc, back)
	}
	if h := recvHeap(t, sub); h.Cnt != 201 || h.Sequence != 2 || h.Reconnect != nil {
		t.Fatalf("second heap after the restart: %+v", h)
	}
	if _, err := sub.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("the normal end of the stream must end the subscription, got %v", err)
	}
	if sub.Lost() != 0 || sub.Reconnects() != 1 || sub.SubscriberID() != 1 {
		t.Errorf("lost %d reconnects %d id %d", sub.Lost(), sub.Reconnects(), sub.SubscriberID())
	}
}

func TestReconnectToTheSameServer(t *testing.T) {
	r, client := newRestartable(t)
	g := &scriptedGateway{script: func(call int) ([]*pb.Heap, error) {
		if call == 1 {
			return heaps(2, 10), status.Error(codes.Unavailable, "connection reset (fake)")
		}
		return heaps(1, 20), nil
	}}
	r.start(g)
	sub, err := client.SubscribeReconnecting(testContext(t), "s", fastPolicy())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	recvHeap(t, sub)
	recvHeap(t, sub)
	h := recvHeap(t, sub)
	rc := h.Reconnect
	if rc == nil || h.Cnt != 20 || h.Sequence != 1 {
		t.Fatalf("heap after the reconnection: %+v", h)
	}
	if rc.ServerRestarted || rc.PreviousSubscriberID != 1 || rc.SubscriberID != 2 || rc.Attempts != 1 ||
		rc.LastSequence != 2 || rc.LastCnt != 11 || status.Convert(rc.Err).Message() != "connection reset (fake)" {
		t.Fatalf("report %+v", rc)
	}
	if _, err := sub.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestReconnectNeverRetriesNotFound(t *testing.T) {
	r, client := newRestartable(t)
	r.start(&scriptedGateway{script: func(int) ([]*pb.Heap, error) {
		return heaps(1, 1), status.Error(codes.NotFound, "the stream went away")
	}})
	sub, err := client.SubscribeReconnecting(testContext(t), "s", fastPolicy())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	recvHeap(t, sub)
	if _, err := sub.Recv(); status.Code(err) != codes.NotFound {
		t.Fatalf("want NOT_FOUND, got %v", err)
	}
	// An unknown stream from the start is refused by SubscribeReconnecting itself.
	if _, err := client.SubscribeReconnecting(testContext(t), "nope", fastPolicy()); status.Code(err) != codes.NotFound {
		t.Fatalf("want NOT_FOUND, got %v", err)
	}
	policy := fastPolicy()
	policy.RetryCodes = append(policy.RetryCodes, codes.PermissionDenied)
	if _, err := client.SubscribeReconnecting(testContext(t), "s", policy); err == nil {
		t.Fatal("a policy retrying PERMISSION_DENIED must be refused")
	}
}

func TestReconnectGivesUp(t *testing.T) {
	r, client := newRestartable(t)
	r.start(&scriptedGateway{script: func(int) ([]*pb.Heap, error) { return heaps(1, 1), errBlock }})
	policy := fastPolicy()
	policy.MaxAttempts = 3
	sub, err := client.SubscribeReconnecting(testContext(t), "s", policy)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	recvHeap(t, sub)
	r.stop() // for good
	if _, err := sub.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("want UNAVAILABLE after 3 attempts, got %v", err)
	}
	if sub.Reconnects() != 0 {
		t.Fatalf("reconnects %d", sub.Reconnects())
	}
}

func TestReconnectHonoursContext(t *testing.T) {
	r, client := newRestartable(t)
	r.start(&scriptedGateway{script: func(int) ([]*pb.Heap, error) { return heaps(1, 1), errBlock }})
	policy := fastPolicy()
	policy.InitialBackoff, policy.MaxBackoff = time.Minute, time.Minute
	ctx, cancel := context.WithCancel(testContext(t))
	sub, err := client.SubscribeReconnecting(ctx, "s", policy)
	if err != nil {
		t.Fatal(err)
	}
	recvHeap(t, sub)
	r.stop()
	done := make(chan error, 1)
	go func() {
		_, err := sub.Recv()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // usually inside the minute-long wait by now
	cancel()
	select {
	case err := <-done:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("want CANCELLED, got %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Recv did not return after the context was cancelled")
	}
}

func TestSubscribeReconnectingWaitsForTheServer(t *testing.T) {
	r, client := newRestartable(t)
	type result struct {
		sub *Subscription
		err error
	}
	done := make(chan result, 1)
	go func() {
		sub, err := client.SubscribeReconnecting(testContext(t), "s", fastPolicy())
		done <- result{sub, err}
	}()
	time.Sleep(50 * time.Millisecond) // a few failed attempts, usually
	r.start(&scriptedGateway{script: func(int) ([]*pb.Heap, error) { return heaps(1, 5), nil }})
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("SubscribeReconnecting did not connect")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.sub.Close()
	// The first connection is not a reconnection: nothing was lost.
	if h := recvHeap(t, res.sub); h.Reconnect != nil || h.Cnt != 5 || res.sub.Reconnects() != 0 {
		t.Fatalf("first heap %+v", h)
	}
}

func TestWatchStatsReconnecting(t *testing.T) {
	r, client := newRestartable(t)
	r.start(&scriptedGateway{script: func(int) ([]*pb.Heap, error) { return heaps(2, 7), errBlock }})
	var reports []Reconnect
	policy := fastPolicy()
	policy.OnReconnect = func(rc Reconnect) { reports = append(reports, rc) }
	watch, err := client.WatchStatsReconnecting(testContext(t), time.Second, policy, "s")
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	recvStats := func() uint64 {
		update, err := watch.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		return update.GetStreams()[0].GetCounters()["heaps"]
	}
	if recvStats() != 7 || recvStats() != 8 || watch.LastReconnect() != nil {
		t.Fatal("updates before the restart")
	}
	r.stop()
	r.start(&scriptedGateway{script: func(int) ([]*pb.Heap, error) { return heaps(2, 1), errBlock }})
	if n := recvStats(); n != 1 || watch.LastReconnect() == nil || len(reports) != 1 {
		t.Fatalf("first update after the restart: heaps %d, report %v", n, watch.LastReconnect())
	}
	if rc := watch.LastReconnect(); rc.Code != codes.Unavailable || rc.SubscriberID != 0 || rc.ServerRestarted {
		t.Fatalf("report %+v", rc)
	}
	if recvStats() != 2 || watch.LastReconnect() != nil {
		t.Fatal("second update after the restart")
	}
}

func TestBackoffGrowsToItsCap(t *testing.T) {
	p := ReconnectPolicy{InitialBackoff: 100 * time.Millisecond, Multiplier: 3, MaxBackoff: 2 * time.Second, Jitter: 0.25, RetryCodes: DefaultRetryCodes}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{100, 300, 900, 2000, 2000}
	for i, w := range want {
		if got := p.Backoff(i+1, 0.5); got != w*time.Millisecond {
			t.Errorf("retry %d: %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if lo, hi := p.Backoff(2, 0), p.Backoff(2, 1); lo != 225*time.Millisecond || hi != 375*time.Millisecond {
		t.Errorf("jitter bounds %v %v", lo, hi)
	}
	if got := p.Backoff(100000, 0); got != 1500*time.Millisecond {
		t.Errorf("huge retry number: %v", got)
	}
	for _, bad := range []ReconnectPolicy{
		{},
		{InitialBackoff: time.Second, MaxBackoff: time.Millisecond, Multiplier: 2, RetryCodes: DefaultRetryCodes},
		{InitialBackoff: time.Millisecond, MaxBackoff: time.Second, Multiplier: 0.5, RetryCodes: DefaultRetryCodes},
		{InitialBackoff: time.Millisecond, MaxBackoff: time.Second, Multiplier: 2, Jitter: 2, RetryCodes: DefaultRetryCodes},
		{InitialBackoff: time.Millisecond, MaxBackoff: time.Second, Multiplier: 2, RetryCodes: []codes.Code{codes.Unauthenticated}},
	} {
		if bad.Validate() == nil {
			t.Errorf("policy %+v accepted", bad)
		}
	}
}

// TestRetrierCountsAttemptsAndTime drives the retrier with a fake clock.
func TestRetrierCountsAttemptsAndTime(t *testing.T) {
	p := DefaultReconnectPolicy()
	p.Jitter, p.MaxAttempts, p.MaxElapsed = 0, 4, 10*time.Second
	r := newRetrier(p)
	clock := time.Unix(1000, 0)
	r.now = func() time.Time { return clock }
	unavailable := status.Error(codes.Unavailable, "gone")

	r.accepted(5, "")
	r.delivered(&Heap{Sequence: 9, Cnt: 77})
	var delays []time.Duration
	for {
		d, ok := r.failed(unavailable)
		if !ok {
			break
		}
		delays = append(delays, d)
		clock = clock.Add(d)
	}
	// The break, then 4 failed calls: 4 waits before the 4 calls.
	if want := []time.Duration{100e6, 200e6, 400e6, 800e6}; !equalDurations(delays, want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}

	p.MaxAttempts = 0 // only MaxElapsed ends this one
	r = newRetrier(p)
	r.now = func() time.Time { return clock }
	r.accepted(5, "")
	if _, ok := r.failed(status.Error(codes.Unauthenticated, "no")); ok {
		t.Fatal("UNAUTHENTICATED retried")
	}
	start := clock
	r.accepted(5, "")
	for {
		d, ok := r.failed(unavailable)
		if !ok {
			break
		}
		if clock.Add(d).Sub(start) > 10*time.Second {
			t.Fatalf("a wait of %v goes past MaxElapsed", d)
		}
		clock = clock.Add(d)
	}
	if clock.Sub(start) != 10*time.Second {
		t.Fatalf("gave up after %v, want 10s", clock.Sub(start))
	}
	r.accepted(2, "")
	if r.pending == nil || r.pending.Downtime != 10*time.Second || !r.pending.ServerRestarted {
		t.Fatalf("report %+v", r.pending)
	}
}

// TestRetrierTrustsTheInstanceID: the daemon's instance id, when sent, decides whether it
// restarted, whatever the subscriber ids say.
func TestRetrierTrustsTheInstanceID(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "gone")
	for _, c := range []struct {
		before, after string
		ids           [2]int
		restarted     bool
	}{
		{"a", "b", [2]int{1, 7}, true},  // a new process, though the id grew
		{"a", "a", [2]int{7, 1}, false}, // the same process, though the id fell
		{"", "", [2]int{7, 1}, true},    // no ids sent: inferred from the subscriber ids
	} {
		r := newRetrier(DefaultReconnectPolicy())
		r.accepted(c.ids[0], c.before)
		if _, ok := r.failed(unavailable); !ok {
			t.Fatal("UNAVAILABLE not retried")
		}
		r.accepted(c.ids[1], c.after)
		if r.pending == nil || r.pending.ServerRestarted != c.restarted {
			t.Fatalf("%+v: report %+v", c, r.pending)
		}
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
