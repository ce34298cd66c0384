package gateway

import (
	"runtime"
	"testing"
	"unsafe"

	pb "github.com/spead2-rs/spead2-gateway-go/gen/gatewayv1"
)

const benchItemBytes = 1 << 20

// benchStream yields the messages of successive heaps, each carrying one 1 MiB "|u1" item in
// the given number of fragments (1: unsplit), as the gateway would send them.
type benchStream struct {
	payload   []byte
	fragments int
	seq       uint64
}

func newBenchStream(fragments int) *benchStream {
	payload := make([]byte, benchItemBytes)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	return &benchStream{payload: payload, fragments: fragments}
}

// next returns the messages of the next heap. Like protobuf's unmarshal, every message owns
// its bytes, so the allocations the reassembler makes are the only ones counted.
func (s *benchStream) next() []*pb.Heap {
	s.seq++
	if s.fragments == 1 {
		item := &pb.Item{Id: 0x1000, Name: "payload", Dtype: "|u1", Shape: []uint64{benchItemBytes}, Data: s.payload}
		return []*pb.Heap{{Stream: "s", Cnt: s.seq, Sequence: s.seq, Items: []*pb.Item{item}}}
	}
	msgs := make([]*pb.Heap, s.fragments)
	chunk := benchItemBytes / s.fragments
	for f := range msgs {
		item := &pb.Item{
			Id: 0x1000, Name: "payload", Dtype: "|u1", Shape: []uint64{benchItemBytes},
			Offset: uint64(f * chunk), Size: benchItemBytes, Data: s.payload[f*chunk : (f+1)*chunk],
		}
		msgs[f] = &pb.Heap{Stream: "s", Cnt: s.seq, Sequence: s.seq, Fragment: uint32(f),
			Fragments: uint32(s.fragments), Items: []*pb.Item{item}}
	}
	return msgs
}

// feedAll feeds one heap's messages and returns the heap they complete.
func feedAll(tb testing.TB, r *reassembler, msgs []*pb.Heap) *Heap {
	var heap *Heap
	for i, msg := range msgs {
		h, err := r.feed(msg)
		if err != nil {
			tb.Fatal(err)
		}
		if (h != nil) != (i == len(msgs)-1) {
			tb.Fatalf("message %d of %d: heap %v", i, len(msgs), h)
		}
		heap = h
	}
	return heap
}

// perHeap measures the allocations and bytes allocated by the reassembler per heap.
func perHeap(t *testing.T, fragments int) (allocs float64, bytes uint64) {
	stream := newBenchStream(fragments)
	var r reassembler
	const runs = 20
	batches := make([][]*pb.Heap, runs+1) // AllocsPerRun makes one extra warm-up run
	for i := range batches {
		batches[i] = stream.next()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	i := 0
	allocs = testing.AllocsPerRun(runs, func() {
		feedAll(t, &r, batches[i])
		i++
	})
	runtime.ReadMemStats(&after)
	return allocs, (after.TotalAlloc - before.TotalAlloc) / (runs + 1)
}

func TestUnsplitHeapIsNotCopied(t *testing.T) {
	stream := newBenchStream(1)
	var r reassembler
	msgs := stream.next()
	heap := feedAll(t, &r, msgs)
	item := heap.Item("payload")
	sent := msgs[0].GetItems()[0].GetData()
	if unsafe.SliceData(item.Data) != unsafe.SliceData(sent) || len(item.Data) != benchItemBytes {
		t.Fatal("Item.Data of an unsplit heap is a copy of the message's bytes")
	}
	value, ok := item.Value.([]uint8)
	if !ok || unsafe.SliceData(value) != unsafe.SliceData(item.Data) || len(value) != benchItemBytes {
		t.Fatalf("Item.Value of a |u1 item is not a view of Item.Data (%T)", item.Value)
	}
	allocs, bytes := perHeap(t, 1)
	t.Logf("1 fragment: %.0f allocs, %d bytes per heap", allocs, bytes)
	if bytes > 4096 {
		t.Errorf("an unsplit 1 MiB heap allocates %d bytes; want no payload-sized allocation", bytes)
	}
}

func TestSplitHeapIsCopiedOnce(t *testing.T) {
	stream := newBenchStream(2)
	var r reassembler
	msgs := stream.next()
	heap := feedAll(t, &r, msgs)
	item := heap.Item("payload")
	value, ok := item.Value.([]uint8)
	if !ok || unsafe.SliceData(value) != unsafe.SliceData(item.Data) {
		t.Fatalf("Item.Value of a |u1 item is not a view of Item.Data (%T)", item.Value)
	}
	if string(item.Data) != string(stream.payload) {
		t.Fatal("reassembled item differs from what was sent")
	}
	if cap(item.Data) != benchItemBytes {
		t.Errorf("reassembly buffer has capacity %d, want exactly %d", cap(item.Data), benchItemBytes)
	}
	allocs, bytes := perHeap(t, 2)
	t.Logf("2 fragments: %.0f allocs, %d bytes per heap", allocs, bytes)
	if bytes > benchItemBytes+4096 {
		t.Errorf("a 1 MiB heap in 2 fragments allocates %d bytes; want one 1 MiB buffer", bytes)
	}
}

// TestWholeChunkIsNotCopied: an item of a split heap that travels in one chunk (offset 0,
// the whole size) is used in place, like the items of an unsplit heap.
func TestWholeChunkIsNotCopied(t *testing.T) {
	whole := []byte{1, 2, 3, 4}
	msgs := []*pb.Heap{
		{Sequence: 1, Fragment: 0, Fragments: 2, Items: []*pb.Item{
			{Id: 1, Name: "a", Dtype: "|u1", Shape: []uint64{4}, Size: 4, Data: whole},
			{Id: 2, Name: "b", Dtype: "|u1", Shape: []uint64{4}, Size: 4, Data: []byte{5, 6}},
		}},
		{Sequence: 1, Fragment: 1, Fragments: 2, Items: []*pb.Item{
			{Id: 2, Name: "b", Dtype: "|u1", Shape: []uint64{4}, Offset: 2, Size: 4, Data: []byte{7, 8}},
		}},
	}
	var r reassembler
	heap := feedAll(t, &r, msgs)
	if a := heap.Item("a"); unsafe.SliceData(a.Data) != unsafe.SliceData(whole) {
		t.Error("a whole item in one chunk was copied")
	}
	if b := heap.Item("b"); string(b.Data) != "\x05\x06\x07\x08" || string(b.Value.([]uint8)) != string(b.Data) {
		t.Errorf("split item: %v / %v", b.Data, b.Value)
	}
}

func benchmarkReassembly(b *testing.B, fragments int) {
	stream := newBenchStream(fragments)
	batches := make([][]*pb.Heap, b.N)
	for i := range batches {
		batches[i] = stream.next()
	}
	var r reassembler
	b.SetBytes(benchItemBytes)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		feedAll(b, &r, batches[i])
	}
}

// go test -run '^$' -bench Reassembly -benchmem
func BenchmarkReassembly1MiB1Fragment(b *testing.B)  { benchmarkReassembly(b, 1) }
func BenchmarkReassembly1MiB2Fragments(b *testing.B) { benchmarkReassembly(b, 2) }
