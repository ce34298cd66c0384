package gateway

import (
	"fmt"
	"time"

	pb "github.com/spead2-rs/spead2-gateway-go/gen/gatewayv1"
)

// maxItemBytes bounds the buffer allocated for one split item, whatever `size` a message
// claims (a reassembled item can never be larger than what a client is willing to hold).
const maxItemBytes = 1 << 34

// ProtocolError reports a message from the gateway that breaks the API's rules (fragments
// out of order, a chunk outside its item, data that does not match dtype and shape).
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "spead2 gateway protocol error: " + e.Msg }

func protocolErrorf(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// Item is one item of a received heap.
type Item struct {
	ID   uint64
	Name string
	// Dtype is the numpy type string of Data ("<f4", ">u2", "|b1", "|S3", or JSON for a
	// structured type); Shape and FortranOrder give the array layout.
	Dtype        string
	Shape        []uint64
	FortranOrder bool
	// Format is the item's legacy SPEAD format, if it was described with one.
	Format []*pb.FormatField
	// Data is the raw element bytes, in the layout above.
	Data []byte
	// Value holds the elements as a Go slice ([]uint8 ... []int64, []float32, []float64,
	// []complex64, []complex128, []bool) in the memory order of Data (row-major unless
	// FortranOrder), with byte order already applied. It is nil for other dtypes: use Data.
	Value any
}

// Heap is one heap delivered by a subscription, reassembled if it was split.
type Heap struct {
	Stream         string
	Cnt            uint64
	Sequence       uint64
	Dropped        uint64
	Received       time.Time
	Incomplete     bool
	StartOfStream  bool
	EndOfStream    bool
	HeapLength     uint64
	ReceivedLength uint64
	// Fragments is how many messages carried the heap (1 when it was not split).
	Fragments int
	// Lost is how many heaps this subscription lost just before this one (the gap in
	// Sequence since the previous heap).
	Lost  uint64
	Items []*Item
	// Reconnect is set on the first heap a reconnecting subscription delivers after it got
	// back from a broken call (see SubscribeReconnecting), and nil otherwise.
	Reconnect *Reconnect
}

// Item returns the item with the given name, or nil.
func (h *Heap) Item(name string) *Item {
	for _, it := range h.Items {
		if it.Name == name {
			return it
		}
	}
	return nil
}

func newItem(meta *pb.Item, data []byte) (*Item, error) {
	value, err := decodeValue(meta.GetDtype(), meta.GetShape(), data)
	if err != nil {
		return nil, protocolErrorf("item %q: %v", meta.GetName(), err)
	}
	return &Item{
		ID: meta.GetId(), Name: meta.GetName(), Dtype: meta.GetDtype(),
		Shape: meta.GetShape(), FortranOrder: meta.GetFortranOrder(),
		Format: meta.GetFormat(), Data: data, Value: value,
	}, nil
}

func newHeap(first *pb.Heap, fragments int) *Heap {
	h := &Heap{
		Stream: first.GetStream(), Cnt: first.GetCnt(), Sequence: first.GetSequence(),
		Dropped: first.GetDropped(), Incomplete: first.GetIncomplete(),
		StartOfStream: first.GetStartOfStream(), EndOfStream: first.GetEndOfStream(),
		HeapLength: first.GetHeapLength(), ReceivedLength: first.GetReceivedLength(),
		Fragments: fragments,
	}
	if first.GetReceived() != nil {
		h.Received = first.GetReceived().AsTime()
	}
	return h
}

// part is an item being reassembled from chunks.
type part struct {
	meta   *pb.Item
	data   []byte
	filled uint64
}

// reassembler turns Heap messages (possibly fragments of one heap) into heaps, and checks
// sequence numbers to detect lost heaps.
type reassembler struct {
	first   *pb.Heap
	next    uint32
	order   []uint64
	parts   map[uint64]*part
	lastSeq uint64
}

// feed returns the heap completed by msg, or nil while fragments are outstanding.
func (r *reassembler) feed(msg *pb.Heap) (*Heap, error) {
	if msg.GetFragments() <= 1 {
		if r.first != nil {
			return nil, protocolErrorf("heap sequence %d arrived inside split heap %d", msg.GetSequence(), r.first.GetSequence())
		}
		return r.finish(msg, msg.GetItems(), 1)
	}
	if msg.GetFragment() == 0 {
		if r.first != nil {
			return nil, protocolErrorf("split heap %d ended after %d fragments", r.first.GetSequence(), r.next)
		}
		r.first, r.next, r.order, r.parts = msg, 0, nil, map[uint64]*part{}
	}
	if r.first == nil || msg.GetSequence() != r.first.GetSequence() || msg.GetFragment() != r.next ||
		msg.GetFragments() != r.first.GetFragments() {
		return nil, protocolErrorf("fragment %d of heap sequence %d out of order", msg.GetFragment(), msg.GetSequence())
	}
	r.next++
	for _, it := range msg.GetItems() {
		if err := r.add(it); err != nil {
			return nil, err
		}
	}
	if r.next < msg.GetFragments() {
		return nil, nil
	}
	return r.finishSplit()
}

func (r *reassembler) add(it *pb.Item) error {
	if it.GetSize() == 0 {
		if _, dup := r.parts[it.GetId()]; dup {
			return protocolErrorf("item %q twice in one heap", it.GetName())
		}
		r.order = append(r.order, it.GetId())
		r.parts[it.GetId()] = &part{meta: it, data: it.GetData(), filled: uint64(len(it.GetData()))}
		return nil
	}
	p, ok := r.parts[it.GetId()]
	if !ok {
		if it.GetSize() > maxItemBytes {
			return protocolErrorf("item %q: size %d too large", it.GetName(), it.GetSize())
		}
		p = &part{meta: it, data: make([]byte, it.GetSize())}
		r.order = append(r.order, it.GetId())
		r.parts[it.GetId()] = p
	}
	end := it.GetOffset() + uint64(len(it.GetData()))
	if uint64(len(p.data)) != it.GetSize() || it.GetOffset() > it.GetSize() || end > it.GetSize() {
		return protocolErrorf("item %q: chunk outside the item", it.GetName())
	}
	copy(p.data[it.GetOffset():end], it.GetData())
	p.filled += uint64(len(it.GetData()))
	return nil
}

func (r *reassembler) finishSplit() (*Heap, error) {
	first := r.first
	items := make([]*pb.Item, 0, len(r.order))
	datas := make([][]byte, 0, len(r.order))
	for _, id := range r.order {
		p := r.parts[id]
		if p.filled != uint64(len(p.data)) {
			return nil, protocolErrorf("item %q: %d of %d bytes received", p.meta.GetName(), p.filled, len(p.data))
		}
		items = append(items, p.meta)
		datas = append(datas, p.data)
	}
	r.first, r.parts, r.order = nil, nil, nil
	h, err := r.build(first, items, datas, int(first.GetFragments()))
	return h, err
}

func (r *reassembler) finish(msg *pb.Heap, items []*pb.Item, fragments int) (*Heap, error) {
	datas := make([][]byte, len(items))
	for i, it := range items {
		if it.GetSize() != 0 {
			return nil, protocolErrorf("item %q: chunk in an unsplit heap", it.GetName())
		}
		datas[i] = it.GetData()
	}
	return r.build(msg, items, datas, fragments)
}

func (r *reassembler) build(first *pb.Heap, items []*pb.Item, datas [][]byte, fragments int) (*Heap, error) {
	seq := first.GetSequence()
	if seq <= r.lastSeq {
		return nil, protocolErrorf("sequence %d after %d", seq, r.lastSeq)
	}
	h := newHeap(first, fragments)
	h.Lost = seq - r.lastSeq - 1
	r.lastSeq = seq
	h.Items = make([]*Item, 0, len(items))
	for i, meta := range items {
		it, err := newItem(meta, datas[i])
		if err != nil {
			return nil, err
		}
		h.Items = append(h.Items, it)
	}
	return h, nil
}
