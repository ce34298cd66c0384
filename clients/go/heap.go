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
	// Data is the raw element bytes, in the layout above. For an item that makes up at
	// least half of its message it is not a copy: it references the received message (see
	// heapCodec), and keeping it keeps the message alive. A smaller item is a copy of its
	// own. An item split across messages is in the one buffer it was reassembled into. The
	// client never writes to Data after Recv returns, and it stays valid as long as the
	// Item (or its Heap) is referenced. Modifying it is allowed but changes Value too for
	// "|u1" and "|i1".
	Data []byte
	// Value holds the elements as a Go slice ([]uint8 ... []int64, []float32, []float64,
	// []complex64, []complex128, []bool) in the memory order of Data (row-major unless
	// FortranOrder), with byte order already applied. It is nil for other dtypes: use Data.
	// For the one-byte integer dtypes ("|u1", "|i1") it is a view of Data, not a copy (the
	// same memory, with the same lifetime); for the other dtypes it is a decoded copy.
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

// newItems builds the items of a heap in one allocation. data[i] is the bytes of metas[i],
// referenced, not copied.
func newItems(metas []*pb.Item, data func(int) []byte) ([]*Item, error) {
	store := make([]Item, len(metas))
	items := make([]*Item, len(metas))
	for i, meta := range metas {
		if err := fillItem(&store[i], meta, data(i)); err != nil {
			return nil, err
		}
		items[i] = &store[i]
	}
	return items, nil
}

func fillItem(it *Item, meta *pb.Item, data []byte) error {
	value, err := decodeValue(meta.GetDtype(), meta.GetShape(), data)
	if err != nil {
		return protocolErrorf("item %q: %v", meta.GetName(), err)
	}
	*it = Item{
		ID: meta.GetId(), Name: meta.GetName(), Dtype: meta.GetDtype(),
		Shape: meta.GetShape(), FortranOrder: meta.GetFortranOrder(),
		Format: meta.GetFormat(), Data: data, Value: value,
	}
	return nil
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

// part is an item of a split heap: the message item that describes it and its bytes, either
// the data of a message (an item carried in one piece) or a buffer its chunks are copied to.
type part struct {
	meta   *pb.Item
	data   []byte
	filled uint64
}

// reassembler turns Heap messages (possibly fragments of one heap) into heaps, and checks
// sequence numbers to detect lost heaps.
//
// Copies: the items of an unsplit heap, and any item that travels in one piece, keep the
// bytes the codec decoded (Item.Data references them). A chunked item is copied once, chunk
// by chunk, into a buffer made at its final size when its first chunk arrives. Buffers are
// never reused: the heaps handed out keep them, and the client never writes to them again.
type reassembler struct {
	first   *pb.Heap
	next    uint32
	parts   []part         // the items of the split heap in progress, in order of arrival
	index   map[uint64]int // item id -> position in parts
	lastSeq uint64
}

// feed returns the heap completed by msg, or nil while fragments are outstanding.
func (r *reassembler) feed(msg *pb.Heap) (*Heap, error) {
	if msg.GetFragments() <= 1 {
		if r.first != nil {
			return nil, protocolErrorf("heap sequence %d arrived inside split heap %d", msg.GetSequence(), r.first.GetSequence())
		}
		return r.finish(msg)
	}
	if msg.GetFragment() == 0 {
		if r.first != nil {
			return nil, protocolErrorf("split heap %d ended after %d fragments", r.first.GetSequence(), r.next)
		}
		r.reset()
		r.first = msg
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

// reset forgets the split heap in progress. The parts and the index are kept for the next
// split heap, but not what they reference.
func (r *reassembler) reset() {
	clear(r.parts)
	r.parts = r.parts[:0]
	if r.index == nil {
		r.index = map[uint64]int{}
	}
	clear(r.index)
	r.first, r.next = nil, 0
}

func (r *reassembler) push(meta *pb.Item, data []byte, filled uint64) {
	r.index[meta.GetId()] = len(r.parts)
	r.parts = append(r.parts, part{meta: meta, data: data, filled: filled})
}

func (r *reassembler) add(it *pb.Item) error {
	i, seen := r.index[it.GetId()]
	chunk := it.GetData()
	size := it.GetSize()
	if size == 0 {
		if seen {
			return protocolErrorf("item %q twice in one heap", it.GetName())
		}
		r.push(it, chunk, uint64(len(chunk)))
		return nil
	}
	end := it.GetOffset() + uint64(len(chunk))
	if it.GetOffset() > size || end > size {
		return protocolErrorf("item %q: chunk outside the item", it.GetName())
	}
	if !seen {
		if size > maxItemBytes {
			return protocolErrorf("item %q: size %d too large", it.GetName(), size)
		}
		if it.GetOffset() == 0 && uint64(len(chunk)) == size {
			// The whole item in one chunk: use the message's bytes, as for an unsplit item.
			r.push(it, chunk, size)
			return nil
		}
		// Allocated once at its final size (make's zeroing is the only other write).
		r.push(it, make([]byte, size), 0)
		i = len(r.parts) - 1
	}
	p := &r.parts[i]
	// More bytes than the item holds would overlap what arrived (or write into message
	// bytes used in place): the item cannot be complete.
	if uint64(len(p.data)) != size || p.filled+uint64(len(chunk)) > size {
		return protocolErrorf("item %q: chunk outside the item", it.GetName())
	}
	copy(p.data[it.GetOffset():end], chunk)
	p.filled += uint64(len(chunk))
	return nil
}

func (r *reassembler) finishSplit() (*Heap, error) {
	defer r.reset()
	metas := make([]*pb.Item, len(r.parts))
	for i := range r.parts {
		p := &r.parts[i]
		if p.filled != uint64(len(p.data)) {
			return nil, protocolErrorf("item %q: %d of %d bytes received", p.meta.GetName(), p.filled, len(p.data))
		}
		metas[i] = p.meta
	}
	h, err := r.start(r.first, int(r.first.GetFragments()))
	if err != nil {
		return nil, err
	}
	if h.Items, err = newItems(metas, func(i int) []byte { return r.parts[i].data }); err != nil {
		return nil, err
	}
	return h, nil
}

// finish turns an unsplit heap message into a heap; its items reference the message's bytes.
func (r *reassembler) finish(msg *pb.Heap) (*Heap, error) {
	metas := msg.GetItems()
	for _, it := range metas {
		if it.GetSize() != 0 {
			return nil, protocolErrorf("item %q: chunk in an unsplit heap", it.GetName())
		}
	}
	h, err := r.start(msg, 1)
	if err != nil {
		return nil, err
	}
	if h.Items, err = newItems(metas, func(i int) []byte { return metas[i].GetData() }); err != nil {
		return nil, err
	}
	return h, nil
}

// start checks the heap's sequence number, counts the heaps lost before it and makes the
// Heap without its items.
func (r *reassembler) start(first *pb.Heap, fragments int) (*Heap, error) {
	seq := first.GetSequence()
	if seq <= r.lastSeq {
		return nil, protocolErrorf("sequence %d after %d", seq, r.lastSeq)
	}
	h := newHeap(first, fragments)
	h.Lost = seq - r.lastSeq - 1
	r.lastSeq = seq
	return h, nil
}
