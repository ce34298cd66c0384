package gateway

import (
	"bytes"
	"slices"
	"testing"
	"time"
	"unsafe"

	pb "github.com/spead2-rs/spead2-gateway-go/gen/gatewayv1"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protobuf "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func tagged(number protowire.Number, wireType protowire.Type, value []byte) []byte {
	return append(protowire.AppendTag(nil, number, wireType), value...)
}

func lengthDelimited(number protowire.Number, value []byte) []byte {
	return tagged(number, protowire.BytesType, protowire.AppendBytes(nil, value))
}

func group(number protowire.Number, content []byte) []byte {
	return append(tagged(number, protowire.StartGroupType, content), protowire.AppendTag(nil, number, protowire.EndGroupType)...)
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func mustMarshal(t *testing.T, m protobuf.Message) []byte {
	t.Helper()
	b, err := protobuf.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameAsProtobuf checks that parseHeap and proto.Unmarshal agree on msg: both fail, or both
// give equal messages.
func sameAsProtobuf(t *testing.T, name string, msg []byte) {
	t.Helper()
	want := &pb.Heap{}
	wantErr := protobuf.Unmarshal(msg, want)
	got := &pb.Heap{}
	gotErr := parseHeap(bytes.Clone(msg), got)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("%s: protobuf error %v, parseHeap error %v", name, wantErr, gotErr)
	}
	if wantErr == nil && !protobuf.Equal(got, want) {
		t.Fatalf("%s: parseHeap gave %v, protobuf %v", name, got, want)
	}
}

func TestParseHeapFollowsProtobufRules(t *testing.T) {
	meta := mustMarshal(t, &pb.Item{Id: 5, Name: "x", Dtype: "|u1", Shape: []uint64{3}})
	unknown := join(
		tagged(900, protowire.VarintType, protowire.AppendVarint(nil, 1<<63)),
		tagged(901, protowire.Fixed64Type, make([]byte, 8)),
		tagged(902, protowire.Fixed32Type, make([]byte, 4)),
		lengthDelimited(903, []byte("abc")),
		group(904, join(tagged(1, protowire.VarintType, []byte{1}), group(905, lengthDelimited(15, []byte("in a group"))))),
	)
	cases := map[string][]byte{
		"data before the metadata, given twice": lengthDelimited(15, join(lengthDelimited(15, []byte("old")), meta, lengthDelimited(15, []byte("new")))),
		"unknown fields at both levels":         join(lengthDelimited(1, []byte("s")), unknown, lengthDelimited(15, join(unknown, meta, lengthDelimited(15, []byte("xyz"))))),
		"an item without data":                  lengthDelimited(15, meta),
		"no items":                              tagged(2, protowire.VarintType, []byte{7}),
		"empty":                                 {},
		"non-minimal varints":                   join([]byte{0xfa, 0x80, 0x00, 0x87, 0x00}, lengthDelimited(15, []byte("12345"))),
		"items with another wire type":          tagged(15, protowire.VarintType, []byte{1}),
	}
	for name, msg := range cases {
		sameAsProtobuf(t, name, msg)
	}
}

func TestParseHeapRejectsWhatProtobufRejects(t *testing.T) {
	valid := mustMarshal(t, &pb.Heap{
		Stream: "s", Cnt: 3, Sequence: 2, Received: timestamppb.New(time.Unix(7, 9)),
		Items: []*pb.Item{
			{Id: 1, Name: "a", Dtype: "<u2", Shape: []uint64{2}, Data: []byte{1, 2, 3, 4}},
			{Id: 2, Name: "b", Dtype: "|u1", Shape: []uint64{}, Data: []byte{9}},
		},
	})
	for k := range len(valid) {
		sameAsProtobuf(t, "truncated", valid[:k])
	}
	corrupt := map[string][]byte{
		"length beyond the end":      tagged(15, protowire.BytesType, join(protowire.AppendVarint(nil, 10), []byte("short"))),
		"varint of 11 bytes":         tagged(3, protowire.VarintType, join(bytes.Repeat([]byte{0xff}, 10), []byte{1})),
		"end of group with no start": protowire.AppendTag(nil, 20, protowire.EndGroupType),
		"no such wire type":          {20<<3 | 6},
		"bad wire type in an item":   lengthDelimited(15, []byte{1<<3 | 7}),
		"a name that is not UTF-8":   lengthDelimited(15, lengthDelimited(2, []byte{0xff})),
		"field number 0":             {0, 1},
	}
	for name, msg := range corrupt {
		sameAsProtobuf(t, name, msg)
	}
}

func within(inner, outer []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(inner)))
	return p >= start && p < start+uintptr(len(outer))
}

func TestParseHeapLeavesLargeDataInTheMessage(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 5000)
	msg := mustMarshal(t, &pb.Heap{Sequence: 1, Items: []*pb.Item{
		{Id: 1, Name: "big", Data: big},
		{Id: 2, Name: "small", Data: []byte("tiny")},
	}})
	heap := &pb.Heap{}
	if err := parseHeap(msg, heap); err != nil {
		t.Fatal(err)
	}
	items := heap.GetItems()
	if len(items) != 2 || !bytes.Equal(items[0].GetData(), big) || string(items[1].GetData()) != "tiny" {
		t.Fatalf("decoded %v", heap)
	}
	if !within(items[0].GetData(), msg) {
		t.Fatal("the big item was copied")
	}
	// Under half the message: copied, so that keeping it does not keep the message.
	if within(items[1].GetData(), msg) {
		t.Fatal("the small item was left in the message")
	}
}

func TestMaterializeCopiesOutOfGrpcBuffers(t *testing.T) {
	msg := bytes.Repeat([]byte{1, 2, 3}, 3000)
	// As grpc hands a message over: in pooled buffers that it reuses after Unmarshal.
	data := mem.BufferSlice{mem.SliceBuffer(msg[:100]), mem.SliceBuffer(msg[100:])}
	got := materialize(data)
	if !bytes.Equal(got, msg) || within(got, msg) {
		t.Fatalf("materialize: equal %v, within grpc's buffers %v", bytes.Equal(got, msg), within(got, msg))
	}
	single := materialize(mem.BufferSlice{mem.SliceBuffer(msg)})
	if !bytes.Equal(single, msg) || within(single, msg) {
		t.Fatal("materialize of one buffer must copy it too")
	}
}

// messageWithData is a Heap of total bytes with one item of dataSize bytes of data.
func messageWithData(t *testing.T, dataSize, total int) []byte {
	t.Helper()
	entry := func(filler int) []byte {
		return lengthDelimited(15, join(lengthDelimited(15, make([]byte, dataSize)), lengthDelimited(900, make([]byte, filler))))
	}
	filler := total - len(entry(0))
	for len(entry(filler)) > total {
		filler--
	}
	msg := entry(filler)
	if len(msg) != total {
		t.Fatalf("made %d bytes, not %d", len(msg), total)
	}
	return msg
}

func TestParseHeapLeavesDataInPlaceFromHalfTheMessage(t *testing.T) {
	for total, inPlace := range map[int]bool{1999: true, 2000: true, 2001: false} {
		msg := messageWithData(t, 1000, total)
		heap := &pb.Heap{}
		if err := parseHeap(msg, heap); err != nil {
			t.Fatal(err)
		}
		if data := heap.GetItems()[0].GetData(); len(data) != 1000 || within(data, msg) != inPlace {
			t.Fatalf("%d bytes: data of %d bytes, in place %v", total, len(data), within(data, msg))
		}
	}
}

func TestHeapCodecDecodesOtherMessagesAsProtobuf(t *testing.T) {
	msg := mustMarshal(t, &pb.StreamInfo{Name: "s"})
	var info pb.StreamInfo
	if err := (heapCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, &info); err != nil || info.GetName() != "s" {
		t.Fatalf("got %v, %v", &info, err)
	}
}

// benchmarkDecode decodes a 1 MiB Heap message handed over in 16 KiB buffers, as grpc does.
func benchmarkDecode(b *testing.B, codec encoding.CodecV2) {
	msg, err := protobuf.Marshal(&pb.Heap{Sequence: 1, Items: []*pb.Item{
		{Id: 0x1000, Name: "payload", Dtype: "|u1", Shape: []uint64{benchItemBytes}, Data: make([]byte, benchItemBytes)},
		{Id: 0x1001, Name: "timestamp", Dtype: "<u8", Data: make([]byte, 8)},
	}})
	if err != nil {
		b.Fatal(err)
	}
	var data mem.BufferSlice
	for chunk := range slices.Chunk(msg, 16384) {
		data = append(data, mem.SliceBuffer(chunk))
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var heap pb.Heap
		if err := codec.Unmarshal(data, &heap); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHeapCodec(b *testing.B) { benchmarkDecode(b, heapCodec{}) }

func BenchmarkDecodeDefaultCodec(b *testing.B) {
	benchmarkDecode(b, encoding.GetCodecV2(proto.Name))
}
